//! Every kernel variant the crate can launch parses and validates with naga, a broken shader
//! is reported with its file and its own line number (not shifted by the defines or by the
//! files compiled before it), and launch bindings that disagree with the shader are refused.
use wgformer::gpu::{Kernel, ShaderFile};
use wgformer::Error;

#[test]
fn every_kernel_variant_passes_naga_validation() {
    let kernels = wgformer::ops::all_kernels();
    assert!(!kernels.is_empty());
    let failures: Vec<String> = kernels
        .iter()
        .filter_map(|k| k.validate().err().map(|e| format!("{}: {e}", k.key())))
        .collect();
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} kernels failed validation:\n{}",
        failures.len(),
        kernels.len(),
        failures.join("\n")
    );
}

/// Line 4 assigns a u32 to an f32: a type error naga reports at that line.
const BROKEN: &str = "// A deliberately broken kernel.
@compute @workgroup_size(WG)
fn main() {
    let x: f32 = 1u;
}
";

fn shader_error(k: &Kernel) -> (&'static str, &'static str, String) {
    match k.validate() {
        Err(Error::Shader { file, entry, msg }) => (file, entry, msg),
        other => panic!("expected a shader error, got {other:?}"),
    }
}

const BROKEN_FILE: ShaderFile = ShaderFile {
    path: "broken.wgsl",
    text: BROKEN,
};

/// A correct three-line part compiled before the broken file.
const SHARED: ShaderFile = ShaderFile {
    path: "shared.wgsl",
    text: "// Shared helpers.\nfn twice(x: f32) -> f32 {\n    return 2.0 * x;\n}\n",
};

#[test]
fn broken_shader_is_reported_with_its_file_and_line() {
    // Two defines are prepended, so the compiler sees line 6; the report must say line 4.
    let k = Kernel::new(&[BROKEN_FILE], "main")
        .define("WG", 64)
        .define("UNUSED", 1);
    let (file, entry, msg) = shader_error(&k);
    assert_eq!((file, entry), ("broken.wgsl", "main"));
    assert!(msg.starts_with("line 4:"), "wrong line in: {msg}");
}

#[test]
fn an_error_in_a_later_file_is_reported_in_that_file() {
    // The compiler sees line 2 (define) + 4 (shared.wgsl) + 4 = 10.
    let k = Kernel::new(&[SHARED, BROKEN_FILE], "main").define("WG", 64);
    let (file, _, msg) = shader_error(&k);
    assert_eq!(file, "broken.wgsl");
    assert!(msg.starts_with("line 4:"), "wrong line in: {msg}");
    // The same error in the shared file, before a correct one.
    let broken_shared = ShaderFile {
        path: "shared.wgsl",
        text: "fn twice(x: f32) -> f32 {\n    let y: f32 = 1u;\n    return 2.0 * x;\n}\n",
    };
    let ok_main = ShaderFile {
        path: "main.wgsl",
        text: "@compute @workgroup_size(1)\nfn main() {}\n",
    };
    let (file, _, msg) = shader_error(&Kernel::new(&[broken_shared, ok_main], "main"));
    assert_eq!(file, "shared.wgsl");
    assert!(msg.starts_with("line 2:"), "wrong line in: {msg}");
}

#[test]
fn missing_entry_point_is_reported() {
    let mut k = adamw_kernel();
    k.entry = "no_such_entry";
    let (file, _, msg) = shader_error(&k);
    assert_eq!(file, "adamw.wgsl");
    assert!(msg.contains("no such entry point"), "{msg}");
}

/// The adamw kernel as the crate builds it: buffers param (rw), grad, m (rw), v (rw), clip.
fn adamw_kernel() -> Kernel {
    wgformer::ops::all_kernels()
        .into_iter()
        .find(|k| k.entry == "adamw")
        .expect("the adamw kernel is listed")
}

#[test]
fn a_launch_buffer_at_the_wrong_binding_number_is_caught() {
    let mut k = adamw_kernel();
    k.validate().unwrap();
    // grad is @binding(2); bind the second buffer at 6, which the `adamw` entry does not use.
    k.bindings[1] = (6, false);
    let (file, entry, msg) = shader_error(&k);
    assert_eq!((file, entry), ("adamw.wgsl", "adamw"));
    assert!(msg.contains("@binding(6)"), "{msg}");
    assert!(msg.contains("does not use"), "{msg}");
}

#[test]
fn a_launch_buffer_with_the_wrong_access_mode_is_caught() {
    let mut k = adamw_kernel();
    // m (@binding(3)) is var<storage, read_write>; claim it is read-only.
    k.bindings[2] = (3, false);
    let (_, _, msg) = shader_error(&k);
    assert!(msg.contains("@binding(3) `m`"), "{msg}");
    assert!(msg.contains("read_write"), "{msg}");
}

#[test]
fn a_binding_the_entry_point_uses_but_no_buffer_fills_is_caught() {
    let mut k = adamw_kernel();
    k.bindings.pop(); // clip, @binding(5)
    let (_, _, msg) = shader_error(&k);
    assert!(msg.contains("@binding(5) `clip`"), "{msg}");
}

/// The right bindings with a uniform struct of the wrong size: the dispatch is refused with
/// the kernel named, and a wrong binding is refused before wgpu sees the pipeline.
#[test]
fn dispatch_refuses_wrong_params_and_wrong_bindings() {
    let gpu = wgformer::Gpu::shared().expect("no GPU adapter");
    let bufs: Vec<wgformer::gpu::Storage> = (0..5).map(|_| gpu.alloc(4).unwrap()).collect();
    let refs: Vec<&wgformer::gpu::Storage> = bufs.iter().collect();
    let too_short = [0u32; 4];
    match gpu.dispatch(&adamw_kernel(), &too_short, &refs, [1, 1, 1]) {
        Err(Error::Shader { file, msg, .. }) => {
            assert_eq!(file, "adamw.wgsl");
            assert!(msg.contains("16 bytes") && msg.contains("160"), "{msg}");
        }
        other => panic!("expected a shader error, got {other:?}"),
    }
    let mut k = adamw_kernel();
    k.bindings[0] = (1, false);
    match gpu.dispatch(&k, &[0u32; 40], &refs, [1, 1, 1]) {
        Err(Error::Shader { msg, .. }) => assert!(msg.contains("@binding(1)"), "{msg}"),
        other => panic!("expected a shader error, got {other:?}"),
    }
}

/// Every `.wgsl` file under `dir`, as a path relative to `root` with `/` separators.
fn wgsl_files(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            wgsl_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            let rel = path.strip_prefix(root).unwrap();
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}

#[test]
fn every_shader_file_is_compiled_by_some_kernel() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    wgsl_files(&root, &root, &mut files);
    assert!(files.len() > 10, "found {files:?}");
    let kernels = wgformer::ops::all_kernels();
    let used: std::collections::HashSet<&str> = kernels
        .iter()
        .flat_map(|k| k.sources.iter().map(|s| s.path))
        .collect();
    let unused: Vec<&String> = files
        .iter()
        .filter(|f| !used.contains(f.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "no kernel in ops::all_kernels() compiles {unused:?}: list the kernel there"
    );
}
