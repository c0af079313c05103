//! Choosing an adapter and opening a device on it.
//!
//! Default: the "best" adapter wgpu can see (discrete GPU > integrated > virtual > CPU, and
//! Vulkan/Metal/DX12 before GL on a tie). `WGPU_BACKEND=vulkan|metal|dx12|gl` narrows the
//! backends and `WGPU_ADAPTER_NAME=<substring>` picks an adapter by name, both as in wgpu's own
//! examples. `WGFORMER_ADAPTER=<n>` picks the n-th adapter of that ranking (0 = the best).
//! Processes of a data-parallel run on one machine (`mpiexec`) spread over its best adapters
//! by their local rank (MPICH's `MPI_LOCALRANKID`, Open MPI's `OMPI_COMM_WORLD_LOCAL_RANK`), so
//! a machine with several GPUs runs one process per GPU.

use crate::error::{Error, Result};

/// Rank an adapter: lower is better.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (kind, backend)
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    // Browsers keep the adapter's name to themselves.
    let name = match info.name.as_str() {
        "" => "unnamed adapter",
        name => name,
    };
    format!("{name} ({:?}, {:?})", info.backend, info.device_type)
}

async fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    instance.enumerate_adapters(backends).await
}

/// In a browser page (wasm32) the only adapter is the one WebGPU hands out, and the
/// environment variables below do not exist, so the same ranking returns it.
pub(crate) async fn choose_adapter() -> Result<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    // Look at the primary backends first; GL only when they have nothing (or is asked for),
    // which also spares the user GL's start-up cost and its warnings.
    let mut adapters = enumerate(backends & wgpu::Backends::PRIMARY).await;
    if adapters.is_empty() && backends.contains(wgpu::Backends::GL) {
        adapters = enumerate(wgpu::Backends::GL).await;
    }
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            backends: format!("{backends:?}"),
        });
    }
    let wanted = std::env::var("WGPU_ADAPTER_NAME").ok();
    let mut candidates: Vec<wgpu::Adapter> = match &wanted {
        Some(name) => {
            let needle = name.to_lowercase();
            let all: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
            let found: Vec<_> = adapters
                .into_iter()
                .filter(|a| a.get_info().name.to_lowercase().contains(&needle))
                .collect();
            if found.is_empty() {
                return Err(Error::AdapterNotFound {
                    wanted: name.clone(),
                    available: all.join("; "),
                });
            }
            found
        }
        None => adapters,
    };
    candidates.sort_by_key(|a| rank(&a.get_info()));
    let listed = |c: &[wgpu::Adapter]| {
        let names: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {}", describe(&a.get_info())))
            .collect();
        names.join("; ")
    };
    if let Ok(index) = std::env::var("WGFORMER_ADAPTER") {
        return match index.trim().parse::<usize>() {
            Ok(i) if i < candidates.len() => Ok(candidates.remove(i)),
            _ => Err(Error::AdapterNotFound {
                wanted: format!("WGFORMER_ADAPTER={index}"),
                available: listed(&candidates),
            }),
        };
    }
    let local_rank = ["MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok());
    // The adapters as good as the best one (same kind and backend class) take turns.
    let best = rank(&candidates[0].get_info());
    let equals = candidates
        .iter()
        .filter(|a| rank(&a.get_info()) == best)
        .count();
    Ok(candidates.remove(local_rank.unwrap_or(0) % equals))
}

/// Features we use when the adapter has them; none is required. Cooperative matrices only
/// where the adapter offers the shape the matmul kernel is written for (`has_coop_16x16`).
pub(crate) fn wanted_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let mut optional =
        wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
    if has_coop_16x16(adapter) {
        optional |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    }
    adapter.features() & optional
}

/// Whether the adapter multiplies 16x16 f16 matrices into a 16x16 f32 accumulator with
/// cooperative matrices (`shaders/matmul/coop_matrix.wgsl`): NVIDIA's tensor cores through
/// `VK_KHR_cooperative_matrix`.
fn has_coop_16x16(adapter: &wgpu::Adapter) -> bool {
    use wgpu::CooperativeScalarType as T;
    adapter
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == T::F16
                && p.cr_type == T::F32
        })
}

/// A device on `adapter` with `limits` (at most the adapter's own).
pub(crate) async fn open_device(
    adapter: &wgpu::Adapter,
    limits: wgpu::Limits,
) -> Result<(wgpu::Device, wgpu::Queue)> {
    let info = adapter.get_info();
    let desc = wgpu::DeviceDescriptor {
        label: Some("wgformer"),
        required_features: wanted_features(adapter),
        required_limits: limits,
        experimental_features: experimental(adapter),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    adapter
        .request_device(&desc)
        .await
        .map_err(|e| Error::Device {
            adapter: describe(&info),
            reason: e.to_string(),
        })
}

/// The experimental-feature token: enabled only where we ask for cooperative matrices.
fn experimental(adapter: &wgpu::Adapter) -> wgpu::ExperimentalFeatures {
    if has_coop_16x16(adapter) {
        // SAFETY: wgpu marks cooperative matrices experimental (its implementation may
        // still have bugs); they are used by one kernel, `coop_matrix`, which
        // tests/matmul.rs checks against the reference wherever the adapter offers them.
        unsafe { wgpu::ExperimentalFeatures::enabled() }
    } else {
        wgpu::ExperimentalFeatures::disabled()
    }
}

pub(crate) fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    match info.driver_info.as_str() {
        "" => describe(info),
        driver => format!("{} [{driver}]", describe(info)),
    }
}
