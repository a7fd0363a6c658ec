//! Append-only files of fixed-size records, synced on every append: the section's chunk
//! registry and the store payments a node has accepted. A crash can leave at most a torn
//! last record, which is dropped on open (its append was never acknowledged).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// A file of `N`-byte records.
#[derive(Debug)]
pub struct RecordFile<const N: usize> {
    file: File,
}

impl<const N: usize> RecordFile<N> {
    /// Opens (or creates) the file at `path` and reads every whole record in it.
    pub fn open(path: &Path) -> std::io::Result<(Self, Vec<[u8; N]>)> {
        let created = !path.exists();
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        if created {
            crate::config::sync_parent(path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let whole = bytes.len() - bytes.len() % N;
        if whole != bytes.len() {
            file.set_len(whole as u64)?;
            file.sync_all()?;
        }
        let records = bytes[..whole].chunks_exact(N).filter_map(|record| record.try_into().ok()).collect();
        Ok((RecordFile { file }, records))
    }

    /// Appends `records` and syncs them before returning.
    pub fn append(&mut self, records: &[[u8; N]]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let length = self.file.metadata()?.len();
        let written = self.file.write_all(&records.concat()).and_then(|()| self.file.sync_data());
        if written.is_err() {
            // Leave no partial record behind to misalign later appends.
            let _ = self.file.set_len(length);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("records");
        {
            let (mut file, records) = RecordFile::<4>::open(&path).expect("open");
            assert!(records.is_empty());
            file.append(&[[1; 4], [2; 4]]).expect("append");
        }
        OpenOptions::new().append(true).open(&path).expect("open").write_all(&[9, 9]).expect("torn write");
        let (mut file, records) = RecordFile::<4>::open(&path).expect("reopen");
        assert_eq!(records, vec![[1; 4], [2; 4]]);
        file.append(&[[3; 4]]).expect("append after the torn tail");
        let (_, records) = RecordFile::<4>::open(&path).expect("reopen");
        assert_eq!(records, vec![[1; 4], [2; 4], [3; 4]]);
    }
}
