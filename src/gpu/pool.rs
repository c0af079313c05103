//! Buffer pool: GPU buffers are reused by size class so a steady training step creates none.
//!
//! Sizes are rounded up to one of four classes per power of two (at most 25% waste).
//! A buffer released while its old contents may still be read by commands that are recorded
//! but not yet submitted goes to `pending`; only `queue.write_buffer` cares (it runs before
//! every command of the next submit), so uploads take buffers from `free` alone, while compute
//! outputs may also take from `pending` (commands run in order, so the earlier reads finish
//! before the new write).
//!
//! The pool hands out the idle buffer with the lowest id: from both lists for a compute output,
//! from `free` for an upload. The choice then depends only on which buffers are idle, not on
//! the order they were released in nor on whether a submit happened in between, so a training
//! step that repeats the same allocations gets the same buffers every time and hits the
//! bind-group cache (keyed by buffer ids). Stacks would rotate the buffers from step to step,
//! and every rotation would create a new set of bind groups until it came full circle.

use std::collections::{BTreeMap, HashMap};

pub const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[derive(Debug)]
pub struct PooledBuffer {
    pub id: u64,
    pub buffer: wgpu::Buffer,
    pub size: u64,
}

#[derive(Default)]
pub struct BufferPool {
    /// Per size class, keyed by buffer id.
    free: HashMap<u64, BTreeMap<u64, PooledBuffer>>,
    pending: HashMap<u64, BTreeMap<u64, PooledBuffer>>,
    next_id: u64,
    pub created: u64,
    pub live_bytes: u64,
}

/// Round `bytes` up to its size class.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(16);
    let pow = bytes.next_power_of_two();
    let quarter = (pow / 8).max(4); // classes at 5/8, 6/8, 7/8, 8/8 of the power of two
    bytes.div_ceil(quarter) * quarter
}

impl BufferPool {
    /// A buffer of at least `bytes`. `for_upload` excludes buffers with pending readers.
    pub fn acquire(&mut self, device: &wgpu::Device, bytes: u64, for_upload: bool) -> PooledBuffer {
        let class = size_class(bytes);
        let lowest = |lists: &HashMap<u64, BTreeMap<u64, PooledBuffer>>| {
            lists
                .get(&class)
                .and_then(BTreeMap::first_key_value)
                .map(|(id, _)| *id)
        };
        let from_pending = !for_upload
            && match (lowest(&self.free), lowest(&self.pending)) {
                (Some(free), Some(pending)) => pending < free,
                (None, pending) => pending.is_some(),
                (Some(_), None) => false,
            };
        let lists = if from_pending {
            &mut self.pending
        } else {
            &mut self.free
        };
        if let Some((_, b)) = lists.get_mut(&class).and_then(BTreeMap::pop_first) {
            return b;
        }
        self.next_id += 1;
        self.created += 1;
        self.live_bytes += class;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgformer pooled"),
            size: class,
            usage: USAGE,
            mapped_at_creation: false,
        });
        PooledBuffer {
            id: self.next_id,
            buffer,
            size: class,
        }
    }

    pub fn release(&mut self, b: PooledBuffer) {
        self.pending.entry(b.size).or_default().insert(b.id, b);
    }

    /// Called after a submit: everything pending is now safe for uploads too.
    pub fn submitted(&mut self) {
        for (class, list) in self.pending.iter_mut() {
            self.free.entry(*class).or_default().append(list);
        }
    }

    pub fn idle_bytes(&self) -> u64 {
        let bytes = |lists: &HashMap<u64, BTreeMap<u64, PooledBuffer>>| -> u64 {
            lists.iter().map(|(class, l)| class * l.len() as u64).sum()
        };
        bytes(&self.free) + bytes(&self.pending)
    }

    pub fn idle_buffers(&self) -> usize {
        self.free.values().map(BTreeMap::len).sum::<usize>()
            + self.pending.values().map(BTreeMap::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_with_bounded_waste() {
        for bytes in [
            1u64,
            4,
            17,
            100,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c.is_multiple_of(4));
            assert!(
                c as f64 <= (bytes.max(16) as f64) * 1.25 + 4.0,
                "{bytes} -> {c}"
            );
        }
    }
}
