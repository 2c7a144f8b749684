//! An SD card of one bootable FAT32 partition, made without root, loop devices or mtools,
//! and read back: the layout both the Pi's and the ODROIDs' cards share.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use crate::mbr::{self, FAT32_LBA, Partition, SECTOR};

/// The smallest boot partition: FAT32 needs 65525 clusters (of 512 bytes here).
pub const MIN_PARTITION: u64 = 64 << 20;
const VOLUME_LABEL: [u8; 11] = *b"AXOLOTLBOOT";
/// Fixed, so the same inputs make the same image.
const DISK_ID: u32 = 0x4158_4f4c;
const VOLUME_ID: u32 = 0x0018_0004;

/// Every file's timestamp: fixed (the same inputs make the same image) and a valid FAT date,
/// 2025-01-01 (fatfs without a clock writes month and day 0).
#[derive(Debug)]
struct FixedTime;

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        fatfs::Date {
            year: 2025,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        fatfs::DateTime {
            date: self.get_current_date(),
            time: fatfs::Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

static FIXED_TIME: FixedTime = FixedTime;

/// A whole SD-card image: the MBR, then one bootable FAT32 partition at sector
/// `partition_lba` holding `files` in its root directory, sized for them with room to spare.
/// What lies between the MBR and the partition is zero (a bootloader's place).
pub fn fat32_card(files: &[(String, Vec<u8>)], partition_lba: u32) -> Result<Vec<u8>, String> {
    let payload: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    // Room for FAT's tables and cluster slack, and for a user's edits of config.txt.
    let want = (payload + payload / 4 + (16 << 20)).max(MIN_PARTITION);
    let size = want.div_ceil(1 << 20) << 20;
    let sectors = u32::try_from(size / SECTOR).map_err(|_| "boot partition too large")?;
    let mut part = Cursor::new(vec![0u8; size as usize]);
    fn io(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
        move |e| format!("{what}: {e}")
    }
    fatfs::format_volume(
        &mut part,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(512)
            .volume_label(VOLUME_LABEL)
            .volume_id(VOLUME_ID),
    )
    .map_err(io("formatting FAT32"))?;
    {
        let fs = fatfs::FileSystem::new(
            &mut part,
            fatfs::FsOptions::new().time_provider(&FIXED_TIME),
        )
        .map_err(io("opening the new FAT32"))?;
        for (name, data) in files {
            let mut f = fs.root_dir().create_file(name).map_err(io(name))?;
            f.truncate().map_err(io(name))?;
            f.write_all(data).map_err(io(name))?;
        }
        fs.unmount().map_err(io("unmounting"))?;
    }
    let table = mbr::encode(
        &[Partition {
            kind: FAT32_LBA,
            first_lba: partition_lba,
            sectors,
            bootable: true,
        }],
        DISK_ID,
    );
    let mut image = vec![0u8; partition_lba as usize * SECTOR as usize];
    image[..512].copy_from_slice(&table);
    image.extend_from_slice(&part.into_inner());
    Ok(image)
}

/// What an SD-card image holds: its partitions and the files in the first one's root
/// directory. Every field is checked: this reads images from anywhere.
pub struct Contents {
    pub partitions: Vec<Partition>,
    pub fat_type: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

pub fn read_image(image: &[u8]) -> Result<Contents, String> {
    let partitions = mbr::decode(image)?;
    let p = *partitions.first().ok_or("no partition")?;
    let start = p.first_lba as u64 * SECTOR;
    let end = start + p.sectors as u64 * SECTOR;
    if end > image.len() as u64 || p.sectors == 0 {
        return Err(format!(
            "partition {start:#x}..{end:#x} beyond the image's {:#x} bytes",
            image.len()
        ));
    }
    let slice = &image[start as usize..end as usize];
    let fs = fatfs::FileSystem::new(Cursor::new(slice.to_vec()), fatfs::FsOptions::new())
        .map_err(|e| format!("FAT: {e}"))?;
    let fat_type = format!("{:?}", fs.fat_type());
    let mut files = BTreeMap::new();
    for e in fs.root_dir().iter() {
        let e = e.map_err(|e| format!("FAT directory: {e}"))?;
        if e.is_file() {
            let mut data = Vec::new();
            e.to_file()
                .read_to_end(&mut data)
                .map_err(|err| format!("{}: {err}", e.file_name()))?;
            files.insert(e.file_name(), data);
        }
    }
    Ok(Contents {
        partitions,
        fat_type,
        files,
    })
}
