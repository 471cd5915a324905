#!/usr/bin/env python3
"""Record a PyTorch program as a cachescope GPU dispatch trace.

Every ATen operator that runs becomes one `dispatch`; the tensor storages it
reads or writes are its `bindings` (whole-storage bytes, access r / w / rw
from the operator schema's alias info); a storage's first use is an `alloc`;
when a new storage takes the memory of one that died, the old buffer gets a
`free`. The output is the format of `workloads/traces/FORMAT.md` (gzip JSON
Lines), which `cachescope sim --gpu` and `cachescope replay` read. The two
traces in `workloads/traces/` were recorded this way on an H200.

As a library:

    from record_torch import DispatchRecorder
    with DispatchRecorder("mymodel.jsonl.gz", model="mymodel"):
        loss = model(x).sum(); loss.backward(); opt.step()

From the command line, with built-in models:

    python3 record_torch.py --model mlp --device cpu --steps 2 --out mlp.jsonl.gz
    python3 record_torch.py --model resnet18 --device cuda --steps 2 --out r18.jsonl.gz   # needs torchvision
    python3 record_torch.py --model gpt2 --device cuda --tokens 16 --out gpt2.jsonl.gz    # needs transformers

Needs PyTorch >= 2.1 (TorchDispatchMode). CUDA is needed only for
`--device cuda`: the recorder itself works on CPU tensors too (that is how
it is tested), though CPU traces show the CPU allocator's reuse, not the
CUDA caching allocator's.
"""

import argparse
import gzip
import hashlib
import json
import sys
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

FORMAT = "gpu-dispatch-trace"
VERSION = 1


class DispatchRecorder(TorchDispatchMode):
    """A dispatch mode that writes every ATen operator as a dispatch event."""

    def __init__(self, path, model="unknown", device=None):
        super().__init__()
        self.path = path
        self.model = model
        self.device = device
        self.out = None
        self.seq = 0
        self.next_buf = 0
        # data_ptr -> (buf id, weakref to the storage, nbytes)
        self.live = {}

    # -- context manager -------------------------------------------------
    def __enter__(self):
        self.out = gzip.open(self.path, "wt", encoding="utf-8")
        dev = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        name = torch.cuda.get_device_name(0) if dev.startswith("cuda") and torch.cuda.is_available() else "cpu"
        self._write({"format": FORMAT, "version": VERSION, "model": self.model, "device": name,
                     "torch": torch.__version__})
        return super().__enter__()

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        self.out.close()
        return result

    def _write(self, obj):
        self.out.write(json.dumps(obj, separators=(",", ":")))
        self.out.write("\n")

    # -- buffers ---------------------------------------------------------
    def _buffer(self, t):
        """The buffer id of tensor `t`'s storage, emitting alloc/free events."""
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        nbytes = storage.nbytes()
        known = self.live.get(ptr)
        if known is not None:
            buf, ref, old_bytes = known
            alive = ref()
            if alive is not None and alive.data_ptr() == ptr and old_bytes == nbytes:
                return buf, nbytes
            # The memory now belongs to another storage: the old buffer died.
            self._write({"ev": "free", "buf": buf})
        buf = self.next_buf
        self.next_buf += 1
        self.live[ptr] = (buf, weakref.ref(storage), nbytes)
        self._write({"ev": "alloc", "buf": buf, "bytes": nbytes})
        return buf, nbytes

    # -- dispatch --------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out):
        # Arguments the schema marks as written (in-place and out= variants).
        written = set()
        schema = getattr(func, "_schema", None)
        if schema is not None:
            for i, a in enumerate(schema.arguments):
                if a.alias_info is not None and a.alias_info.is_write:
                    written.add(a.name)
                    written.add(i)
        access = {}  # buf -> [bytes, read, write]
        shapes = []

        def touch(t, read, write):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                return
            if self.device and not str(t.device).startswith(self.device):
                return
            if t.untyped_storage().nbytes() == 0:
                return
            buf, nbytes = self._buffer(t)
            entry = access.setdefault(buf, [nbytes, False, False])
            entry[1] |= read
            entry[2] |= write
            shapes.append((tuple(t.shape), str(t.dtype)))

        for i, a in enumerate(args):
            for t in tree_flatten(a)[0]:
                w = i in written
                touch(t, True, w)
        for name, a in kwargs.items():
            for t in tree_flatten(a)[0]:
                w = name in written
                # An out= tensor is written, not read.
                touch(t, not (w and name == "out"), w)
        for t in tree_flatten(out)[0]:
            touch(t, False, True)
        if not access:
            return
        op = str(func.overloadpacket.__name__) + "." + str(func._overloadname)
        key = hashlib.blake2b(repr((op, shapes)).encode(), digest_size=8).hexdigest()
        bindings = []
        for buf, (nbytes, r, w) in access.items():
            bindings.append([buf, nbytes, "rw" if (r and w) else ("w" if w else "r")])
        self._write({"ev": "dispatch", "seq": self.seq, "op": op, "pipeline": key, "bindings": bindings})
        self.seq += 1


# -- built-in models -------------------------------------------------------

def run_mlp(device, steps):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(32, 256, device=device)
    y = torch.randint(0, 10, (32,), device=device)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


def run_resnet18(device, steps):
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(8, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (8,), device=device)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def run_gpt2(device, tokens):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config()).to(device).eval()
    ids = torch.randint(0, 50257, (1, 32), device=device)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=tokens, do_sample=False, pad_token_id=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "resnet18", "gpt2"], default="mlp")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to PyTorch (use --device cpu)")
    with DispatchRecorder(args.out, model=args.model, device=args.device.split(":")[0]) as rec:
        if args.model == "mlp":
            run_mlp(args.device, args.steps)
        elif args.model == "resnet18":
            run_resnet18(args.device, args.steps)
        else:
            run_gpt2(args.device, args.tokens)
    print(f"{args.out}: {rec.seq} dispatches, {rec.next_buf} buffers", file=sys.stderr)


if __name__ == "__main__":
    main()
