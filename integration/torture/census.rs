//! The thread census: which threads this process has, by name
//! (`/proc/self/task/*/comm`, 15 characters at most), and which are new.

/// The names of this process's threads.
pub fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The threads in `now` beyond those in `before` (a multiset difference).
pub fn new_threads(before: &[String], now: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    let mut extra = Vec::new();
    for name in now {
        match left.iter().position(|b| b == name) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => extra.push(name.clone()),
        }
    }
    extra
}
