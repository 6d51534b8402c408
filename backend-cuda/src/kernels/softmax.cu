// softmax kernels: written next (work in progress).
