//! The one rule for libtorch's intra-op threads, wherever a worker runs: `--threads` /
//! `ORRERY_THREADS` when given (executors give each trial its share: the local executor the
//! machine's cores divided by the parallelism, a Pod its `resources.cpu`), else the CPUs this
//! process may use — its affinity mask and cgroup CPU quota, which is what a container with a CPU
//! limit or a `taskset` run has — never libtorch's own default of every core of the machine.

/// The thread count and where it came from (printed at start).
pub fn rule(flag: usize) -> (usize, &'static str) {
    if flag > 0 {
        return (flag, "--threads / ORRERY_THREADS");
    }
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (n, "the CPUs available to this process")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_flag_wins_else_the_available_cpus() {
        assert_eq!(super::rule(3).0, 3);
        let available = std::thread::available_parallelism().unwrap().get();
        assert_eq!(super::rule(0).0, available);
    }
}
