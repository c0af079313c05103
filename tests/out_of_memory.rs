//! Running out of memory is an error, not an abort or a hang. Lavapipe's "GPU memory" is this
//! process's memory, so the test re-runs itself in a child whose address space is capped with
//! `ulimit -v`, and there allocates 128 MiB tensors until one fails: the child must get an
//! `Err` that says the GPU is out of memory, and exit normally.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgformer::{Gpu, Tensor};

const CHILD: &str = "WGFORMER_OOM_CHILD";
const NAME: &str = "running_out_of_memory_is_an_error_not_an_abort";

/// The child's part: allocate and fill until the first error, then report it on stdout.
fn allocate_until_it_fails() {
    let gpu = Gpu::new().unwrap();
    // Compile the fill kernel while memory is plentiful (LLVM aborts when it runs out).
    Tensor::full(&gpu, &[4], 1.0).unwrap().to_vec().unwrap();
    let mut held = Vec::new();
    for i in 0..64 {
        let result = Tensor::full(&gpu, &[32 << 20], 1.0).and_then(|t| {
            gpu.synchronize()?;
            Ok(t)
        });
        match result {
            Ok(t) => held.push(t),
            Err(e) => {
                println!("OOM-RESULT after {i} tensors: {e}");
                return;
            }
        }
    }
    println!("OOM-RESULT none: 64 tensors of 128 MiB all fit");
}

#[test]
fn running_out_of_memory_is_an_error_not_an_abort() {
    if std::env::var_os(CHILD).is_some() {
        allocate_until_it_fails();
        return;
    }
    let gpu = Gpu::shared().unwrap();
    if gpu.inner().info.device_type != wgpu::DeviceType::Cpu {
        // A discrete GPU's memory is not capped by ulimit; CI runs this on lavapipe.
        println!("not a CPU adapter: the address-space cap cannot make it run out");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    // 3 GiB of address space: the device, the compiler and ~15 tensors fit, 64 do not.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" --exact {NAME} --nocapture --test-threads 1",
            3 << 20
        ))
        .arg(&exe)
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the child hung for 300 s after running out of memory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "the child died ({status}) instead of returning an error\n{stdout}\n{stderr}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split("OOM-RESULT ").nth(1))
        .unwrap_or_else(|| panic!("no result from the child:\n{stdout}\n{stderr}"));
    println!("{line}");
    assert!(line.starts_with("after"), "nothing failed: {line}");
    assert!(line.contains("out of memory"), "{line}");
}
