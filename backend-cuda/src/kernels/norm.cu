// norm kernels: written next (work in progress).
