//! The machine a run ran on, as the reports record it: host name, kernel, CPU model, cores.

/// What `uname(2)` and `/proc/cpuinfo` say about this machine.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub hostname: String,
    /// `Linux 6.18.0-…`
    pub kernel: String,
    pub cpu_model: String,
    /// Cores online.
    pub cpus: usize,
    pub arch: &'static str,
}

impl Machine {
    pub fn this() -> Machine {
        Machine {
            hostname: uname_field(|u| &u.nodename),
            kernel: format!("{} {}", uname_field(|u| &u.sysname), uname_field(|u| &u.release)),
            cpu_model: cpu_model(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            arch: std::env::consts::ARCH,
        }
    }
}

/// A field of uname(2), as text.
fn uname_field(field: fn(&libc::utsname) -> &[libc::c_char; 65]) -> String {
    // SAFETY: uname fills a plain struct we own; its fields are NUL-terminated.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = field(&name).iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn cpu_model() -> String {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("model name")).unwrap_or("");
    line.split_once(':').map_or("", |(_, model)| model.trim()).to_string()
}
