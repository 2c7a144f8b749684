//! newc ("070701") cpio archive writer, the format the kernel unpacks as initramfs.

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Builds an archive in memory. All entries get uid/gid 0 and mtime 0 so the
/// output is byte-for-byte reproducible.
#[derive(Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

impl CpioWriter {
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let namesize = name.len() + 1;
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            namesize as u32,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
    }

    fn pad4(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// `path` without a leading slash, e.g. `"bin"`.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, (0, 0), &[]);
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, (0, 0), data);
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_padding() {
        let mut w = CpioWriter::new();
        w.file("init", 0o755, b"abc");
        let a = w.finish();
        assert_eq!(&a[..6], b"070701");
        // ino 1, mode 0100755, filesize 3, namesize 5.
        assert_eq!(&a[6..14], b"00000001");
        assert_eq!(&a[14..22], b"000081ed");
        assert_eq!(&a[54..62], b"00000003");
        assert_eq!(&a[94..102], b"00000005");
        // 110-byte header + "init\0" = 115, padded to 116, then data.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..119], b"abc");
        assert_eq!(a[119], 0);
        assert_eq!(&a[120..126], b"070701");
        assert!(a.windows(11).any(|w| w == b"TRAILER!!!\0"));
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn char_device_numbers() {
        let mut w = CpioWriter::new();
        w.char_dev("dev/console", 0o600, 5, 1);
        let a = w.finish();
        assert_eq!(&a[14..22], b"00002180");
        // rdevmajor, rdevminor.
        assert_eq!(&a[78..86], b"00000005");
        assert_eq!(&a[86..94], b"00000001");
    }

    /// Cross-check with GNU cpio when installed.
    #[test]
    fn gnu_cpio_lists_it() {
        let mut w = CpioWriter::new();
        w.dir("bin", 0o755);
        w.file("bin/busybox", 0o755, b"\x7fELF");
        w.symlink("bin/sh", "busybox");
        w.char_dev("dev/console", 0o600, 5, 1);
        let a = w.finish();
        let mut child = match std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => {
                println!("skipped: GNU cpio not installed");
                return;
            }
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&a).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        assert!(listing.contains("bin/sh -> busybox"), "{listing}");
        assert!(listing.contains("crw-------"), "{listing}");
        assert_eq!(listing.lines().count(), 4, "{listing}");
    }
}
