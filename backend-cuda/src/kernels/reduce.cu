// reduce kernels: written next (work in progress).
