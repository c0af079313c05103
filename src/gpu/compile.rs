//! Compiling a kernel into a pipeline: the shader reflected and checked against the device's
//! limits first (a kernel past one is refused by the limit's name), compiled once per device
//! and kept; in a browser page the compiler's answer is awaited by the next read.

use super::{Gpu, Kernel, Pipeline, State};
use crate::error::{Error, Result};
use std::sync::Arc;

impl Gpu {
    /// Compile `kernel`'s pipeline now rather than at its first dispatch. Natively a shader
    /// the driver refuses is an error here; in a browser page the answer comes later, with
    /// the next read or `compile_async`.
    pub fn compile(&self, kernel: &Kernel) -> Result<()> {
        let mut s = self.state();
        self.pipeline(&mut s, kernel).map(|_| ())
    }

    /// `compile`, with the driver's answer awaited (in a browser page, where `compile` cannot
    /// wait for it): how a test learns that the browser's compiler takes every kernel.
    pub async fn compile_async(&self, kernel: &Kernel) -> Result<()> {
        self.compile(kernel)?;
        self.settle_compilations().await
    }

    /// In a browser page, wait for the compilers' answers on pipelines created so far; the
    /// first refusal becomes the device's fault (every later read reports it). Natively each
    /// pipeline was checked as it was created.
    pub(super) async fn settle_compilations(&self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        {
            let pending = std::mem::take(&mut self.state().compiling);
            for (file, entry, answer) in pending {
                if let Some(err) = answer.await {
                    let mut slot = self.0.fault.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(format!("{file}: {entry}: {err}"));
                    let msg = err.to_string();
                    return Err(Error::Shader { file, entry, msg });
                }
            }
        }
        self.check_fault()
    }

    /// The compiled pipeline for `kernel`, compiling it on first use.
    pub(super) fn pipeline(&self, s: &mut State, kernel: &Kernel) -> Result<Arc<Pipeline>> {
        if let Some(p) = s.pipelines.get(kernel) {
            return Ok(p.clone());
        }
        let lacking = [
            (
                kernel.subgroups && !self.has_subgroups(),
                "subgroup support",
            ),
            (kernel.f16 && !self.has_f16(), "f16 in shaders (shader-f16)"),
            (
                kernel.coop_matrix && !self.has_coop_matrix(),
                "16x16 f16 cooperative matrices",
            ),
        ];
        if let Some((_, what)) = lacking.into_iter().find(|l| l.0) {
            return Err(Error::Shader {
                file: kernel.file(),
                entry: kernel.entry,
                msg: format!("needs {what}, which this adapter lacks"),
            });
        }
        // The bindings and the Params size, checked against the shader before wgpu sees it.
        let reflection = kernel.reflect()?;
        // What the kernel needs against what the device allows, refused by the limit's name.
        let limits = &self.0.limits;
        let needs = [
            (
                "storage buffers bound",
                kernel.bindings.len() as u32,
                limits.max_storage_buffers_per_shader_stage,
                "max_storage_buffers_per_shader_stage",
            ),
            (
                "bytes of workgroup memory",
                reflection.workgroup_bytes,
                limits.max_compute_workgroup_storage_size,
                "max_compute_workgroup_storage_size",
            ),
            (
                "invocations per workgroup",
                reflection.invocations,
                limits.max_compute_invocations_per_workgroup,
                "max_compute_invocations_per_workgroup",
            ),
        ];
        if let Some((what, used, limit, name)) = needs.into_iter().find(|n| n.1 > n.2) {
            return Err(Error::Shader {
                file: kernel.file(),
                entry: kernel.entry,
                msg: format!("needs {used} {what}; this adapter allows {limit} ({name})"),
            });
        }
        let device = &self.0.device;
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        for &(binding, writable) in &kernel.bindings {
            entries.push(storage(binding, !writable));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: None,
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.file()),
            source: wgpu::ShaderSource::Wgsl(kernel.wgsl().into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(kernel.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[],
                // Our kernels initialise the workgroup memory they read.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader {
                file: kernel.file(),
                entry: kernel.entry,
                msg: err.to_string(),
            });
        }
        // A page cannot wait for the scope: it is popped now (scopes pop in order) and its
        // answer awaited by the next read (`settle_compilations`).
        #[cfg(target_arch = "wasm32")]
        s.compiling
            .push((kernel.file(), kernel.entry, Box::pin(scope.pop())));
        s.counters.pipelines_compiled += 1;
        let p = Arc::new(Pipeline {
            pipeline,
            layout,
            index: s.pipeline_list.len(),
            params_bytes: reflection.params_bytes,
        });
        s.pipeline_list.push(p.clone());
        s.pipelines.insert(kernel.clone(), p.clone());
        Ok(p)
    }
}
