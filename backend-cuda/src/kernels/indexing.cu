// indexing kernels: written next (work in progress).
