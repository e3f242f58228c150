"""The kernel wing: what boots (image), what a --kernel name resolves to (resolve), kernel
versions and configs (version, kconfig), and building kernels from recipes (build/).

Booting needs only `image`, `version` and `kconfig`; nothing here imports the build
package but `resolve`, so a guest comes up without the compiler stack.
"""
