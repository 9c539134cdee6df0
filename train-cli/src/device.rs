//! Choosing the compute device.

use anyhow::{bail, Context, Result};
use candle_core::Device;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceArg {
    #[default]
    Cpu,
    Cuda,
}

pub fn select(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda if cfg!(feature = "cuda") => {
            let ordinal = gpu_ordinal();
            Device::new_cuda(ordinal).with_context(|| {
                format!(
                    "cannot open CUDA device {ordinal}: is an NVIDIA GPU visible (nvidia-smi) with a driver at least \
                     as new as the CUDA toolkit this adaftr was built with?"
                )
            })
        }
        DeviceArg::Cuda => bail!(
            "this adaftr was built without CUDA support; rebuild it with \
             `cargo build --release -p adaftr-cli --features cuda` on a machine with nvcc"
        ),
    }
}

/// Device 0 of those the process sees (CUDA_VISIBLE_DEVICES picks another); under
/// `mpirun`, the ranks on a machine take its GPUs in turn by local rank.
fn gpu_ordinal() -> usize {
    let local = crate::distributed::local_rank().unwrap_or(0);
    match gpu_count() {
        0 => local,
        n => local % n,
    }
}

/// The number of GPUs this process sees (none without the `cuda` feature, or without a
/// driver).
pub fn gpu_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        use candle_core::cuda_backend::cudarc::driver::CudaContext;
        CudaContext::device_count().map_or(0, |n| n.max(0) as usize)
    }
    #[cfg(not(feature = "cuda"))]
    0
}
