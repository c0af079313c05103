//! Every kernel variant the crate can launch parses and validates with naga, and a broken
//! shader is reported with its file and its own line number (not shifted by the defines).
use wgformer::gpu::Kernel;
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

#[test]
fn broken_shader_is_reported_with_its_file_and_line() {
    // Two defines are prepended, so the compiler sees line 6; the report must say line 4.
    let k = Kernel::new("broken.wgsl", BROKEN, "main")
        .define("WG", 64)
        .define("UNUSED", 1);
    let (file, entry, msg) = shader_error(&k);
    assert_eq!((file, entry), ("broken.wgsl", "main"));
    assert!(msg.starts_with("line 4:"), "wrong line in: {msg}");
}

#[test]
fn missing_entry_point_is_reported() {
    let k = Kernel::new(
        "adamw.wgsl",
        include_str!("../shaders/adamw.wgsl"),
        "no_such_entry",
    )
    .define("WG", 64);
    let (file, _, msg) = shader_error(&k);
    assert_eq!(file, "adamw.wgsl");
    assert!(msg.contains("no such entry point"), "{msg}");
}
