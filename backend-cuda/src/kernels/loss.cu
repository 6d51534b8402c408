// loss kernels: written next (work in progress).
