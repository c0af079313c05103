//! The GPU runtime: one device, a buffer pool, a pipeline cache, a bind-group cache, and a
//! recorder that batches every dispatch until somebody needs a result on the CPU.
//!
//! Why batching: on lavapipe a dispatch costs ~10 us inside a shared compute pass but ~100+ us
//! with a submit of its own. `dispatch` therefore only records; `flush` encodes everything
//! recorded into one compute pass and one submit. Reading a tensor (`read`) is the only thing
//! that flushes, besides `Gpu::submit_every`: on a GPU the recorded work goes out every 128
//! dispatches, so the device starts on a step while the CPU still records it.

mod adapter;
mod compile;
mod kernel;
mod policy;
mod pool;
mod profile;
mod wait;

pub(crate) use kernel::shader_file;
pub use kernel::{grid, Kernel, Reflection, ShaderFile};
pub use policy::{
    default_tune_cache, AttentionPath, KernelPolicy, MatmulPacking, MatmulPrecision, MatmulVariant,
    RowWidth, Tuning,
};
pub use pool::size_class;
pub use profile::{format_profile, KernelTime};
pub use wait::block_on;

use crate::error::{Error, Result};
use pool::{BufferPool, PooledBuffer};
use profile::Profile;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use wgpu::Limits;

/// Dispatches per submit on CPU adapters (lavapipe), unless the policy says otherwise: there a
/// submit costs ~100 us and the queue runs on the same cores that record, so a step goes in
/// one submit (this bounds only huge graphs).
const CPU_SUBMIT_EVERY: usize = 8192;
/// Dispatches per submit on GPUs: the GPU starts on the first part of a step while the CPU
/// records the rest, instead of idling until the whole step is recorded.
const GPU_SUBMIT_EVERY: usize = 128;
/// Bind groups kept in the cache before it is emptied.
const MAX_BIND_GROUPS: usize = 1 << 16;
/// Bytes of uniform parameters each dispatch may use.
const PARAM_SLOT: u64 = 256;
/// Parameter slots per uniform chunk.
const SLOTS_PER_CHUNK: u64 = 256;

/// What the runtime has done since start-up. Tests assert on differences of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub dispatches: u64,
    pub submits: u64,
    pub buffers_created: u64,
    pub pipelines_compiled: u64,
    pub bind_groups_created: u64,
    pub bytes_read_back: u64,
    pub bytes_uploaded: u64,
    /// Microseconds the CPU spent blocked waiting for the device (`read`, `synchronize`;
    /// not counted in a browser page, which has no clock): a training step's wall time minus
    /// this is the time the CPU took to record it.
    pub wait_micros: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            dispatches: self.dispatches - o.dispatches,
            submits: self.submits - o.submits,
            buffers_created: self.buffers_created - o.buffers_created,
            pipelines_compiled: self.pipelines_compiled - o.pipelines_compiled,
            bind_groups_created: self.bind_groups_created - o.bind_groups_created,
            bytes_read_back: self.bytes_read_back - o.bytes_read_back,
            bytes_uploaded: self.bytes_uploaded - o.bytes_uploaded,
            wait_micros: self.wait_micros - o.wait_micros,
        }
    }
}

/// A storage buffer owned by a tensor; returns to the pool when dropped.
pub struct Storage {
    gpu: Gpu,
    buf: Option<PooledBuffer>,
    /// Length in 4-byte elements.
    len: usize,
}

impl Storage {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    fn pooled(&self) -> &PooledBuffer {
        self.buf.as_ref().expect("storage used after release")
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.gpu.state().pool.release(b);
        }
    }
}

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    index: usize,
    /// Size of the shader's uniform `Params` (None: the entry point does not read it).
    params_bytes: Option<u32>,
}

struct Recorded {
    pipeline: usize,
    bind_group: wgpu::BindGroup,
    param_offset: u32,
    groups: [u32; 3],
}

/// Per-dispatch uniform parameters live in chunks bound with a dynamic offset.
struct ParamChunk {
    buffer: wgpu::Buffer,
    cpu: Vec<u8>,
}

struct State {
    pool: BufferPool,
    pipelines: HashMap<Kernel, Arc<Pipeline>>,
    pipeline_list: Vec<Arc<Pipeline>>,
    bind_groups: HashMap<(usize, usize, Vec<u64>), wgpu::BindGroup>,
    chunks: Vec<ParamChunk>,
    recorded: Vec<Recorded>,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
    counters: Counters,
    profile: Profile,
    /// Submit after this many recorded dispatches (`Gpu::submit_every`).
    submit_every: usize,
    /// In a browser page: pipelines whose compilation errors have not been awaited yet.
    #[cfg(target_arch = "wasm32")]
    compiling: Vec<(&'static str, &'static str, PendingScope)>,
}

/// The answer of a popped error scope.
#[cfg(target_arch = "wasm32")]
type PendingScope =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>> + Send>>;

pub struct GpuInner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    slot_bytes: u64,
    /// Which kernels the ops launch here (see `policy.rs`).
    policy: Mutex<KernelPolicy>,
    state: Mutex<State>,
    /// The first error wgpu reported outside an error scope, or the device's loss: surfaced
    /// as `Error::Gpu` by the next `synchronize` or `read` instead of wgpu's default panic.
    fault: Arc<Mutex<Option<String>>>,
}

/// A handle to the device; cheap to clone. Every tensor holds one.
#[derive(Clone)]
pub struct Gpu(Arc<GpuInner>);

static SHARED: OnceLock<std::result::Result<Gpu, String>> = OnceLock::new();

/// Why the blocking calls fail in a browser page, and what to call instead.
pub(crate) const BLOCKING_IN_BROWSER: &str =
    "a browser page cannot block its thread to wait for the GPU: \
    open the device with Gpu::new_async and read tensors with Tensor::to_vec_async";

impl Gpu {
    /// Open the best adapter (see `adapter.rs` for the choice and its environment overrides),
    /// with the kernel policy the environment asks for (`KernelPolicy::from_env`). Blocks
    /// until the device is open: in a browser page use [`Gpu::new_async`].
    pub fn new() -> Result<Gpu> {
        Gpu::open(None, KernelPolicy::from_env()?)
    }

    /// `new` without blocking: what a browser page awaits (it may not block its thread).
    pub async fn new_async() -> Result<Gpu> {
        Gpu::open_async(None, KernelPolicy::from_env()?).await
    }

    /// A device of its own with `policy`, whatever the environment says: how tests and
    /// benchmarks run a chosen kernel without changing the choice for anyone else.
    pub fn with_policy(policy: KernelPolicy) -> Result<Gpu> {
        Gpu::open(None, policy)
    }

    /// `new`, with buffers refused above `max_bytes` instead of the adapter's storage-binding
    /// limit: how tests exercise both sides of the limit without gigabyte tensors.
    pub fn with_binding_limit(max_bytes: u64) -> Result<Gpu> {
        let cap = wgpu::Limits {
            max_storage_buffer_binding_size: max_bytes,
            ..Limits::unlimited()
        };
        Gpu::open(Some(cap), KernelPolicy::from_env()?)
    }

    /// `new`, with the device opened under `limits` where they are below the adapter's own:
    /// `wgpu::Limits::default()` is what every WebGPU implementation must offer (8 storage
    /// buffers per shader stage, 16 KiB of workgroup memory, 128 MiB per binding), so a test
    /// on a bigger adapter runs the kernels a small browser adapter would.
    pub fn with_limits(limits: wgpu::Limits) -> Result<Gpu> {
        Gpu::open(Some(limits), KernelPolicy::from_env()?)
    }

    /// `with_limits` without blocking (a browser page).
    pub async fn with_limits_async(limits: wgpu::Limits) -> Result<Gpu> {
        Gpu::open_async(Some(limits), KernelPolicy::from_env()?).await
    }

    fn open(cap: Option<wgpu::Limits>, policy: KernelPolicy) -> Result<Gpu> {
        block_on(Gpu::open_async(cap, policy))
    }

    /// The device, with the adapter's own limits (the defaults would cap storage bindings at
    /// 128 MiB and, on lavapipe, workgroup memory at 16 KiB and invocations at 256), lowered
    /// to `cap` where it asks for less.
    async fn open_async(cap: Option<wgpu::Limits>, policy: KernelPolicy) -> Result<Gpu> {
        let adapter = adapter::choose_adapter().await?;
        let info = adapter.get_info();
        let wanted = match &cap {
            Some(cap) => adapter.limits().or_worse_values_from(cap),
            None => adapter.limits(),
        };
        let (device, queue) = adapter::open_device(&adapter, wanted).await?;
        log::info!("wgformer: using {}", adapter::describe_adapter(&info));
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let record_fault = |f: &Arc<Mutex<Option<String>>>, msg: String| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(msg);
        };
        {
            let f = Arc::clone(&fault);
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let msg = match e {
                    wgpu::Error::OutOfMemory { .. } => "the GPU is out of memory; use smaller \
                        batches (train.batch_size, train.max_frames) or a smaller model"
                        .to_string(),
                    other => other.to_string(),
                };
                record_fault(&f, msg)
            }));
            let f = Arc::clone(&fault);
            device.set_device_lost_callback(move |reason, msg| {
                record_fault(&f, format!("the GPU device was lost ({reason:?}): {msg}"))
            });
        }
        // wgpu may round a limit up to what the hardware has; the cap is what the kernels see.
        let limits = match &cap {
            Some(cap) => device.limits().or_worse_values_from(cap),
            None => device.limits(),
        };
        let slot_bytes = PARAM_SLOT.max(limits.min_uniform_buffer_offset_alignment as u64);
        let submit_every = resolve_submit_every(&policy, &info);
        Ok(Gpu(Arc::new(GpuInner {
            features: device.features(),
            device,
            queue,
            info,
            limits,
            slot_bytes,
            fault,
            policy: Mutex::new(policy),
            state: Mutex::new(State {
                pool: BufferPool::default(),
                pipelines: HashMap::new(),
                pipeline_list: Vec::new(),
                bind_groups: HashMap::new(),
                chunks: Vec::new(),
                recorded: Vec::new(),
                staging: HashMap::new(),
                counters: Counters::default(),
                profile: Profile::default(),
                submit_every,
                #[cfg(target_arch = "wasm32")]
                compiling: Vec::new(),
            }),
        })))
    }

    /// One device shared by the whole process (tests, examples). Opened on first use.
    pub fn shared() -> Result<Gpu> {
        match SHARED.get_or_init(|| Gpu::new().map_err(|e| e.to_string())) {
            Ok(g) => Ok(g.clone()),
            Err(msg) => Err(Error::Gpu(msg.clone())),
        }
    }

    pub fn inner(&self) -> &GpuInner {
        &self.0
    }

    /// "name (backend, type) [driver]" of the adapter in use.
    pub fn adapter_name(&self) -> String {
        adapter::describe_adapter(&self.0.info)
    }

    /// Whether the adapter is a CPU (lavapipe): the ops pick CPU-shaped kernels there.
    pub fn is_cpu(&self) -> bool {
        self.0.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The kernel policy of this device.
    pub fn policy(&self) -> KernelPolicy {
        self.0
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The policy's matmul precision, read without copying the whole policy (every matmul
    /// asks).
    pub fn matmul_precision(&self) -> MatmulPrecision {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.matmul_precision
    }

    /// The policy's row width, if it forces one (every row kernel and sum asks).
    pub fn forced_row_width(&self) -> Option<RowWidth> {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.row_width
    }

    /// Whether backward passes keep their activations as f16 (the policy's `save_half`).
    pub fn save_half(&self) -> bool {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.save_half
    }

    /// Whether `ops::linear_act` fuses the activation into the matmul (see
    /// `KernelPolicy::fuse_activation`).
    pub fn fuses_activation(&self) -> bool {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.fuse_activation.unwrap_or(!self.is_cpu())
    }

    /// Whether the optimizer updates several parameters per dispatch (see
    /// `KernelPolicy::optimizer_groups`).
    pub fn groups_optimizer_updates(&self) -> bool {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.optimizer_groups.unwrap_or(!self.is_cpu())
    }

    /// The policy's matmul packing (every matmul asks).
    pub fn matmul_packing(&self) -> MatmulPacking {
        let policy = self.0.policy.lock().unwrap_or_else(|p| p.into_inner());
        policy.matmul_packing
    }

    /// Replace the kernel policy of this device (every handle to it) from now on.
    pub fn set_policy(&self, policy: KernelPolicy) {
        self.state().submit_every = resolve_submit_every(&policy, &self.0.info);
        *self.0.policy.lock().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// Recorded dispatches go to the device in submits of at most this many: the policy's
    /// `submit_every`, else one submit per step on CPU adapters and 128 dispatches on GPUs.
    pub fn submit_every(&self) -> usize {
        self.state().submit_every
    }

    /// Whether shaders may use `f16` (`Features::SHADER_F16`).
    pub fn has_f16(&self) -> bool {
        self.0.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether the `coop_matrix` matmul runs here: 16x16 f16 cooperative matrices with f32
    /// accumulators (tensor cores), which the device was opened with where offered.
    pub fn has_coop_matrix(&self) -> bool {
        self.0
            .features
            .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    }

    pub fn has_subgroups(&self) -> bool {
        self.0.features.contains(wgpu::Features::SUBGROUP)
    }

    /// Whether kernels that broadcast from `lanes` lanes run here: subgroups, and none
    /// narrower than `lanes`.
    pub fn has_subgroups_of(&self, lanes: u32) -> bool {
        self.has_subgroups() && self.0.info.subgroup_min_size >= lanes
    }

    pub fn counters(&self) -> Counters {
        let s = self.state();
        let mut c = s.counters;
        c.buffers_created = s.pool.created;
        c
    }

    /// Time every dispatch from now on (see `profile.rs`: each is submitted and waited for on
    /// its own, which slows everything down), or stop timing.
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        if cfg!(target_arch = "wasm32") && on {
            return Err(Error::Gpu(BLOCKING_IN_BROWSER.into()));
        }
        self.synchronize()?;
        let timed = on && self.0.features.contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut s = self.state();
        s.profile.on = on;
        s.profile.timer = timed.then(|| profile::Timer::new(&self.0.device, &self.0.queue));
        Ok(())
    }

    /// Time per kernel since profiling started or `reset_profile`, largest first.
    pub fn profile(&self) -> Vec<KernelTime> {
        self.state().profile.report()
    }

    pub fn reset_profile(&self) {
        self.state().profile.clear();
    }

    /// Bytes of every buffer the pool has created (in use or idle): the device memory held for
    /// tensors. Its growth while an op runs on a fresh device is the op's peak extra memory.
    pub fn pooled_bytes(&self) -> u64 {
        self.state().pool.live_bytes
    }

    /// Bytes of the pooled buffers some tensor holds right now (`pooled_bytes` less the idle
    /// ones): what the live tensors take, in whole size classes.
    pub fn held_bytes(&self) -> u64 {
        let state = self.state();
        state.pool.live_bytes - state.pool.idle_bytes()
    }

    /// Pooled buffers not in use by any tensor right now.
    pub fn idle_buffers(&self) -> usize {
        self.state().pool.idle_buffers()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Storage buffers one kernel may bind (`max_storage_buffers_per_shader_stage`).
    pub fn max_storage_buffers(&self) -> usize {
        self.0.limits.max_storage_buffers_per_shader_stage as usize
    }

    /// The largest buffer one binding may hold (`max_storage_buffer_binding_size`).
    pub fn max_binding_bytes(&self) -> u64 {
        self.0.limits.max_storage_buffer_binding_size
    }

    fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.0.limits.max_storage_buffer_binding_size;
        if size_class(bytes) > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit,
            });
        }
        Ok(())
    }

    /// Uninitialised storage for `len` 4-byte elements (kernels write all of it).
    pub fn alloc(&self, len: usize) -> Result<Storage> {
        let bytes = (len as u64) * 4;
        self.check_size("tensor", bytes)?;
        let buf = self.state().pool.acquire(&self.0.device, bytes, false);
        Ok(Storage {
            gpu: self.clone(),
            buf: Some(buf),
            len,
        })
    }

    /// Storage holding a copy of `data` (any 4-byte plain type).
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Result<Storage> {
        assert_eq!(std::mem::size_of::<T>(), 4, "upload takes 4-byte elements");
        let bytes = std::mem::size_of_val(data) as u64;
        self.check_size("tensor", bytes)?;
        let mut s = self.state();
        let buf = s.pool.acquire(&self.0.device, bytes, true);
        if bytes > 0 {
            self.0
                .queue
                .write_buffer(&buf.buffer, 0, bytemuck::cast_slice(data));
        }
        s.counters.bytes_uploaded += bytes;
        drop(s);
        Ok(Storage {
            gpu: self.clone(),
            buf: Some(buf),
            len: data.len(),
        })
    }

    /// Overwrite `storage` with `data` (same length). Recorded work is submitted first, so
    /// the write lands after it, in program order.
    pub fn write<T: bytemuck::Pod>(&self, storage: &Storage, data: &[T]) -> Result<()> {
        if std::mem::size_of_val(data) != storage.len * 4 {
            return Err(Error::Gpu(format!(
                "write of {} bytes into a buffer of {} elements",
                std::mem::size_of_val(data),
                storage.len
            )));
        }
        let mut s = self.state();
        if !s.recorded.is_empty() {
            self.submit(&mut s, None);
        }
        self.0
            .queue
            .write_buffer(&storage.pooled().buffer, 0, bytemuck::cast_slice(data));
        s.counters.bytes_uploaded += (storage.len * 4) as u64;
        Ok(())
    }

    /// Record one dispatch of `kernel`. `params` is its uniform `struct Params` (a `#[repr(C)]`
    /// Pod struct with the shader's fields in the shader's order); `buffers` bind in the order
    /// of `kernel.bindings`.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        params: &P,
        buffers: &[&Storage],
        groups: [u32; 3],
    ) -> Result<()> {
        if buffers.len() != kernel.bindings.len() {
            return Err(Error::Gpu(format!(
                "{}: launched with {} buffers, kernel binds {}",
                kernel.key(),
                buffers.len(),
                kernel.bindings.len()
            )));
        }
        if std::mem::size_of::<P>() as u64 > PARAM_SLOT {
            return Err(Error::Gpu(format!(
                "{}: its Params of {} bytes exceed the {PARAM_SLOT}-byte uniform slot",
                kernel.key(),
                std::mem::size_of::<P>()
            )));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let max = self.0.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Gpu(format!(
                "{}: {groups:?} workgroups exceed the adapter's limit of {max} per dimension",
                kernel.key()
            )));
        }
        let mut s = self.state();
        let pipeline = self.pipeline(&mut s, kernel)?;
        let bytes = bytemuck::bytes_of(params);
        if pipeline
            .params_bytes
            .is_some_and(|want| want as usize != bytes.len())
        {
            return Err(Error::Shader {
                file: kernel.file(),
                entry: kernel.entry,
                msg: format!(
                    "launched with {} bytes of parameters; the shader's struct Params has {}",
                    bytes.len(),
                    pipeline.params_bytes.unwrap_or_default()
                ),
            });
        }
        let profile_start = s.profile.on.then(std::time::Instant::now);

        // Parameters: next free slot of the current chunk.
        let slot = s.recorded.len() as u64;
        let chunk_index = (slot / SLOTS_PER_CHUNK) as usize;
        let offset = (slot % SLOTS_PER_CHUNK) * self.0.slot_bytes;
        if chunk_index == s.chunks.len() {
            let buffer = self.0.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgformer params"),
                size: SLOTS_PER_CHUNK * self.0.slot_bytes,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            s.chunks.push(ParamChunk {
                buffer,
                cpu: vec![0; (SLOTS_PER_CHUNK * self.0.slot_bytes) as usize],
            });
        }
        let at = offset as usize;
        s.chunks[chunk_index].cpu[at..at + bytes.len()].copy_from_slice(bytes);

        // Bind group: cached by (pipeline, chunk, buffer ids); pooled buffers recur every step.
        let ids: Vec<u64> = buffers.iter().map(|st| st.pooled().id).collect();
        let key = (pipeline.index, chunk_index, ids);
        let bind_group = match s.bind_groups.get(&key) {
            Some(bg) => bg.clone(),
            None => {
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &s.chunks[chunk_index].buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAM_SLOT),
                    }),
                }];
                for (st, (binding, _)) in buffers.iter().zip(&kernel.bindings) {
                    entries.push(wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: st.pooled().buffer.as_entire_binding(),
                    });
                }
                let bg = self.0.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.layout,
                    entries: &entries,
                });
                s.counters.bind_groups_created += 1;
                if s.bind_groups.len() >= MAX_BIND_GROUPS {
                    // Allocation patterns changed (new model, new shapes): start over.
                    s.bind_groups.clear();
                }
                s.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        s.recorded.push(Recorded {
            pipeline: pipeline.index,
            bind_group,
            param_offset: offset as u32,
            groups,
        });
        s.counters.dispatches += 1;
        if s.recorded.len() >= s.submit_every || profile_start.is_some() {
            self.submit(&mut s, None);
        }
        if let Some(start) = profile_start {
            drop(s);
            self.0
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::Gpu(e.to_string()))?;
            let wall = start.elapsed();
            let mut s = self.state();
            let time = match &s.profile.timer {
                Some(timer) => timer.read(&self.0.device).map_err(Error::Gpu)?,
                None => wall,
            };
            s.profile
                .add(format!("{}:{}", kernel.file(), kernel.entry), time);
        }
        Ok(())
    }

    /// Encode everything recorded into one compute pass, optionally followed by a copy into a
    /// staging buffer, and submit it.
    fn submit(&self, s: &mut State, copy: Option<(&wgpu::Buffer, &wgpu::Buffer, u64)>) {
        let used = s.recorded.len() as u64;
        for (i, chunk) in s.chunks.iter().enumerate() {
            let first = i as u64 * SLOTS_PER_CHUNK;
            if first >= used {
                break;
            }
            let bytes = ((used - first).min(SLOTS_PER_CHUNK) * self.0.slot_bytes) as usize;
            self.0
                .queue
                .write_buffer(&chunk.buffer, 0, &chunk.cpu[..bytes]);
        }
        let mut encoder = self
            .0
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        if !s.recorded.is_empty() {
            // Profiling submits one dispatch at a time, each timed by its pass's timestamps.
            let timer = s.profile.timer.as_ref().filter(|_| s.profile.on);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgformer batch"),
                timestamp_writes: timer.map(|t| t.pass_writes()),
            });
            let mut current = usize::MAX;
            for r in &s.recorded {
                if r.pipeline != current {
                    pass.set_pipeline(&s.pipeline_list[r.pipeline].pipeline);
                    current = r.pipeline;
                }
                pass.set_bind_group(0, &r.bind_group, &[r.param_offset]);
                pass.dispatch_workgroups(r.groups[0], r.groups[1], r.groups[2]);
            }
            drop(pass);
            if let Some(t) = timer {
                t.resolve(&mut encoder);
            }
        }
        if let Some((src, dst, bytes)) = copy {
            encoder.copy_buffer_to_buffer(src, 0, dst, 0, bytes);
        }
        self.0.queue.submit([encoder.finish()]);
        s.recorded.clear();
        s.counters.submits += 1;
        s.pool.submitted();
    }

    /// Submit everything recorded so far (without waiting for it).
    pub fn flush(&self) {
        let mut s = self.state();
        if !s.recorded.is_empty() {
            self.submit(&mut s, None);
        }
    }

    /// Wait until the device has finished all submitted work.
    pub fn synchronize(&self) -> Result<()> {
        self.check_fault()?;
        self.flush();
        self.wait_for_device()
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check_fault()
    }

    /// Block until the device has run everything submitted, counting the time in
    /// `Counters::wait_micros`.
    fn wait_for_device(&self) -> std::result::Result<(), wgpu::PollError> {
        let started = (!cfg!(target_arch = "wasm32")).then(std::time::Instant::now);
        self.0.device.poll(wgpu::PollType::wait_indefinitely())?;
        if let Some(t) = started {
            self.state().counters.wait_micros += t.elapsed().as_micros() as u64;
        }
        Ok(())
    }

    /// An error wgpu reported asynchronously (a lost device, an uncaptured validation error).
    fn check_fault(&self) -> Result<()> {
        match self
            .0
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(msg) => Err(Error::Gpu(msg.clone())),
            None => Ok(()),
        }
    }

    /// Copy `storage` back to the CPU: flushes recorded work, waits for it, maps a staging
    /// buffer. This and `read_async` are the only ways data comes back, so every readback is
    /// counted. Blocks; a browser page awaits `read_async` instead.
    pub fn read<T: bytemuck::Pod>(&self, storage: &Storage) -> Result<Vec<T>> {
        block_on(self.read_async(storage))
    }

    /// `read` as a future. Natively the device is polled until the copy has landed, so the
    /// future is ready at once; in a browser the page's event loop completes it.
    pub async fn read_async<T: bytemuck::Pod>(&self, storage: &Storage) -> Result<Vec<T>> {
        let bytes = storage.len as u64 * 4;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        self.settle_compilations().await?;
        let class = size_class(bytes);
        let staging = {
            let mut s = self.state();
            let staging = match s.staging.get_mut(&class).and_then(Vec::pop) {
                Some(b) => b,
                None => self.0.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgformer staging"),
                    size: class,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            };
            self.submit(&mut s, Some((&storage.pooled().buffer, &staging, bytes)));
            s.counters.bytes_read_back += bytes;
            staging
        };

        let (mapped, completer) = wait::callback();
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            completer.complete(r)
        });
        self.wait_for_device()
            .map_err(|e| Error::Gpu(format!("waiting for readback: {e}")))?;
        let mapped = mapped.await;
        self.check_fault()?;
        mapped
            .ok_or_else(|| Error::Gpu("readback callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("mapping readback buffer: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(format!("reading mapped buffer: {e}")))?;
            bytemuck::cast_slice::<u8, T>(&view).to_vec()
        };
        staging.unmap();
        self.state().staging.entry(class).or_default().push(staging);
        Ok(out)
    }
}

/// The policy's dispatches per submit, else the adapter kind's default.
fn resolve_submit_every(policy: &KernelPolicy, info: &wgpu::AdapterInfo) -> usize {
    policy.submit_every.unwrap_or(match info.device_type {
        wgpu::DeviceType::Cpu => CPU_SUBMIT_EVERY,
        _ => GPU_SUBMIT_EVERY,
    })
}
