//! Quality scoring: VMAF and PSNR on libvmaf, with frames paired by their stamps.
