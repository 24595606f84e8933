"""What this machine can compute fast, and the precision ``precision: auto`` picks from it.

bf16 autocast is only fast where the hardware computes bf16 natively: a CUDA GPU with bf16 (Ampere and later), or a
CPU with AMX or AVX-512 bf16 instructions. Elsewhere PyTorch emulates it, and a CPU training step gets slower, not
faster: `benchmarks/precision.py` measured a fine-tuning step of EfficientNet-Lite0 10 times slower in bf16 than
in fp32 with AVX2 only, and 1.35 times slower on AVX-512 without bf16 instructions, where oneDNN still reports bf16
support. So ``auto`` asks for the instructions, not only for oneDNN's support. On a GPU without bf16 (Volta,
Turing), ``auto`` is fp16 mixed precision, which its tensor cores run fast.

Capping oneDNN (``ONEDNN_MAX_CPU_ISA=AVX2``) and ATen (``ATEN_CPU_CAPABILITY=avx2``) makes a newer CPU compute as an
AVX2-only one does; ``auto`` follows the cap. Importing this module does not import torch; its functions do.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

AUTO = "auto"
# oneDNN's ISA levels (ONEDNN_MAX_CPU_ISA) that include native bf16 instructions
BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512", "ALL")


@dataclass(frozen=True)
class Machine:
    """The capability line: what a timing was measured on, and what ``precision: auto`` decides from."""

    torch: str
    cpu: str  # the processor's name
    isa: str  # ATen's kernels: DEFAULT, AVX2, AVX512, ZVECTOR, ...
    amx: bool
    avx512_bf16: bool
    bf16: bool  # native bf16 on this CPU, oneDNN not capped below it
    threads: int
    gpu: str  # "" when none
    gpu_bf16: bool
    onednn_cap: str = ""  # ONEDNN_MAX_CPU_ISA when set

    def line(self) -> str:
        """One line for a log, a results table or a benchmark's JSON."""
        extras = [n for n, on in (("AMX", self.amx), ("avx512_bf16", self.avx512_bf16)) if on]
        native = "native bf16" if self.bf16 else "no native bf16"
        if self.onednn_cap:
            native += f" (oneDNN capped at {self.onednn_cap})"
        gpu = f"; GPU {self.gpu} ({'bf16' if self.gpu_bf16 else 'no bf16'})" if self.gpu else "; no GPU"
        return (
            f"{self.cpu}, {self.isa}{''.join(' + ' + e for e in extras)}, {native}, {self.threads} threads"
            f"{gpu}; torch {self.torch}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (``model name``, ``flags`` or Arm's ``Features``)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for row in info:
                if not row.strip():
                    break  # the first processor's block ends here
                key, _, value = row.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def onednn_capped() -> bool:
    """True when ``ONEDNN_MAX_CPU_ISA`` (or its old name ``DNNL_MAX_CPU_ISA``) holds oneDNN below bf16."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    return cap not in BF16_ISAS


def machine() -> Machine:
    import torch

    cpu: Any = torch.cpu
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    if platform.machine().lower() in ("aarch64", "arm64"):  # Arm: the bf16 feature (Neoverse V1/N2, Graviton 3)
        avx512_bf16, amx = False, False
        native = "bf16" in (_cpuinfo().get("Features") or "").split()
    else:
        native = amx or avx512_bf16
    bf16 = native and torch.ops.mkldnn._is_mkldnn_bf16_supported() and not onednn_capped()
    gpu, gpu_bf16 = "", False
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        gpu_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return Machine(
        torch=torch.__version__,
        cpu=cpu_name(),
        isa=torch.backends.cpu.get_cpu_capability(),
        amx=amx,
        avx512_bf16=avx512_bf16,
        bf16=bf16,
        threads=torch.get_num_threads(),
        gpu=gpu,
        gpu_bf16=gpu_bf16,
        onednn_cap=os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "",
    )


def on_gpu(accelerator: Any) -> bool:
    """Whether a Trainer with this ``accelerator`` (a name, an Accelerator, or None) runs on a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return False
    name = accelerator.lower() if isinstance(accelerator, str) else type(accelerator).__name__.lower()
    return name in ("auto", "gpu", "cuda", "cudaaccelerator", "nonetype")


def choose_precision(accelerator: Any = "auto", found: Machine | None = None) -> tuple[str, str]:
    """``precision: auto`` for a Trainer on ``accelerator``: the Lightning precision and the reason, in words."""
    found = found or machine()
    if on_gpu(accelerator):
        if found.gpu_bf16:
            return "bf16-mixed", f"the GPU ({found.gpu}) computes bf16 natively"
        import torch

        major, _ = torch.cuda.get_device_capability(0)
        if major >= 7:
            return "16-mixed", f"the GPU ({found.gpu}) has no bf16 but fast fp16 (tensor cores)"
        return "32-true", f"the GPU ({found.gpu}) has neither bf16 nor fp16 tensor cores"
    if found.bf16:
        what = "AMX" if found.amx else "AVX-512 bf16" if found.avx512_bf16 else "bf16"
        return "bf16-mixed", f"this CPU computes bf16 natively ({what} instructions)"
    if (found.amx or found.avx512_bf16) and onednn_capped():
        return "32-true", "oneDNN is capped below bf16 (ONEDNN_MAX_CPU_ISA), so bf16 would be emulated, and slower"
    return "32-true", f"this CPU ({found.isa}) has no bf16 instructions, so bf16 would be emulated, and slower"
