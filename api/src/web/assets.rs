//! The pages' scripts and style sheet (`web/assets/` at the top of the repository, the front end
//! of DESIGN.md's layout), compiled into the binary.

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// FNV-1a of the body: the ETag.
    pub hash: u64,
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

macro_rules! assets {
    ($($name:literal => $type:expr),* $(,)?) => {
        const ASSETS: &[Asset] = &[$(Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/assets/", $name)),
            hash: fnv1a(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/assets/", $name))),
        }),*];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "orrery.css" => "text/css; charset=utf-8",
    "common.js" => JS,
    "chart.js" => JS,
    "experiments.js" => JS,
    "experiment.js" => JS,
    "panels.js" => JS,
    "trial.js" => JS,
    "compare.js" => JS,
}

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_import_is_an_embedded_asset() {
        // A page would fail at run time on an import the binary does not carry.
        for a in super::ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.split(['\'', '"']).nth(1).unwrap();
                let name = spec.strip_prefix("./").unwrap();
                assert!(
                    super::find(name).is_some(),
                    "{}: {spec} is not embedded",
                    a.name
                );
            }
        }
    }
}
