//! Per-kernel timing, to find where a step's time goes. With profiling on, every dispatch is
//! submitted and waited for on its own, in a compute pass of its own. Where the adapter has
//! timestamp queries, the pass's start and end timestamps give the kernel's time on the device
//! alone; elsewhere the dispatch's wall time, submit round trip included (tens of
//! microseconds), is counted, which overstates the small kernels. Serialising the work costs
//! overlap the device would otherwise find: use it to look, never for a benchmark figure.

use std::collections::HashMap;
use std::time::Duration;

/// Time spent in one kernel: `file:entry` of its shader, over every dispatch since the last
/// reset.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: String,
    pub dispatches: u64,
    pub total: Duration,
}

#[derive(Default)]
pub(super) struct Profile {
    pub on: bool,
    /// Present while on, where the adapter has timestamp queries.
    pub timer: Option<Timer>,
    times: HashMap<String, (u64, Duration)>,
}

/// Two timestamps around one compute pass, resolved into a buffer the CPU can map.
pub(super) struct Timer {
    queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period: f64,
}

impl Timer {
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Timer {
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgformer profile timestamps"),
                size: 16,
                usage,
                mapped_at_creation: false,
            })
        };
        Timer {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("wgformer profile"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            period: queue.get_timestamp_period() as f64,
        }
    }

    /// The pass's timestamps: index 0 at its start, 1 at its end.
    pub fn pass_writes(&self) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        }
    }

    /// Record, after the pass, the copy of its timestamps to the mappable buffer.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.resolve_query_set(&self.queries, 0..2, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, 16);
    }

    /// The last timed pass's duration; call once its submission has finished.
    pub fn read(&self, device: &wgpu::Device) -> Result<Duration, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| e.to_string())?;
        rx.recv()
            .map_err(|_| "timestamp readback never ran".to_string())?
            .map_err(|e| e.to_string())?;
        let ticks = {
            let view = self
                .readback
                .get_mapped_range(..)
                .map_err(|e| e.to_string())?;
            let t: &[u64] = bytemuck::cast_slice(&view);
            t[1].saturating_sub(t[0])
        };
        self.readback.unmap();
        Ok(Duration::from_nanos((ticks as f64 * self.period) as u64))
    }
}

impl Profile {
    pub fn add(&mut self, kernel: String, t: Duration) {
        let e = self.times.entry(kernel).or_default();
        e.0 += 1;
        e.1 += t;
    }

    pub fn clear(&mut self) {
        self.times.clear();
    }

    /// Kernels by total time, largest first.
    pub fn report(&self) -> Vec<KernelTime> {
        let mut v: Vec<KernelTime> = self
            .times
            .iter()
            .map(|(k, &(dispatches, total))| KernelTime {
                kernel: k.clone(),
                dispatches,
                total,
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.kernel.cmp(&b.kernel)));
        v
    }
}

/// `times` as a table: kernel, dispatches, total ms, share of the sum.
pub fn format_profile(times: &[KernelTime]) -> String {
    let sum: f64 = times.iter().map(|t| t.total.as_secs_f64()).sum();
    let mut out = format!(
        "{:<40} {:>10} {:>10} {:>7}\n",
        "kernel", "dispatches", "ms", "share"
    );
    for t in times {
        let secs = t.total.as_secs_f64();
        out += &format!(
            "{:<40} {:>10} {:>10.2} {:>6.1}%\n",
            t.kernel,
            t.dispatches,
            secs * 1e3,
            100.0 * secs / sum.max(f64::MIN_POSITIVE)
        );
    }
    out
}
