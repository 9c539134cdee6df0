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
        // Device 0 of those the process sees (CUDA_VISIBLE_DEVICES picks another).
        DeviceArg::Cuda if cfg!(feature = "cuda") => Device::new_cuda(0).context(
            "cannot open CUDA device 0: is an NVIDIA GPU visible (nvidia-smi) with a driver at least as \
             new as the CUDA toolkit this adaftr was built with?",
        ),
        DeviceArg::Cuda => bail!(
            "this adaftr was built without CUDA support; rebuild it with \
             `cargo build --release -p adaftr-cli --features cuda` on a machine with nvcc"
        ),
    }
}
