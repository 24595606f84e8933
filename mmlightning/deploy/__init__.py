"""From a checkpoint to a running service: export (ONNX, TorchScript, torch.export), int8, serving, sweeps."""
