//! The pages' scripts and style sheet (`web/assets/` at the top of the repository, the front end
//! of DESIGN.md's layout), compiled into the binary: `build.rs` lists every file there.

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

// Every file of web/assets (subfolders too), listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    /// The asset a relative import of module `from` names: `../common.js` from `panels/x.js` is
    /// `common.js`.
    fn resolve(from: &str, spec: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for seg in spec.split('/') {
            match seg {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_file_is_embedded_with_its_type() {
        let panel = super::find("panels/stability.js").expect("subfolders are embedded");
        assert!(panel.content_type.starts_with("text/javascript"));
        assert!(super::find("orrery.css")
            .unwrap()
            .content_type
            .starts_with("text/css"));
        assert_eq!(resolve("panels/stability.js", "../common.js"), "common.js");
        assert_eq!(resolve("experiment.js", "./panels.js"), "panels.js");
    }

    #[test]
    fn every_module_import_is_an_embedded_asset() {
        // A page would fail at run time on an import the binary does not carry.
        for a in super::ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.split(['\'', '"']).nth(1).unwrap();
                let name = resolve(a.name, spec);
                assert!(
                    super::find(&name).is_some(),
                    "{}: {spec} ({name}) is not embedded",
                    a.name
                );
            }
        }
    }
}
