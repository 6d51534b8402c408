// pool kernels: written next (work in progress).
