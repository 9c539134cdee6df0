//! Choosing the compute device.

use anyhow::{bail, Result};
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
        DeviceArg::Cuda if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        DeviceArg::Cuda => bail!(
            "this adaftr was built without CUDA support; rebuild it with \
             `cargo build --release -p adaftr-cli --features cuda` on a machine with nvcc"
        ),
    }
}
