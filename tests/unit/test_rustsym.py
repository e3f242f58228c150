"""Rust v0 symbols as titles name them: trait-impl methods as `<Type as Trait>::method`,
anything else by its last segment, whatever the reader does not know unchanged."""

from __future__ import annotations

import pytest

from harness.kernel_log.rustsym import rust_name


@pytest.mark.parametrize(
    ("symbol", "want"),
    [
        (  # a trait impl: the crate root is a back-reference (B2_)
            "_RNvXCsabc_5mydrvNtB2_6DeviceNtCsdef_6kernel9Operation4open",
            "<mydrv::Device as kernel::Operation>::open",
        ),
        (  # a disambiguated impl inside a module
            "_RNvXs0_NtCsabc_5mydrv3subNtB5_4ItemNtNtCsdef_4core3ops4Drop4drop",
            "<mydrv::sub::Item as core::ops::Drop>::drop",
        ),
        (  # an inherent method: its name
            "_RNvMs2_NtCsabc_5mydrv6threadNtB5_6Thread9copy_data",
            "copy_data",
        ),
        ("_RNvNtCsabc_4core9panicking9panic_fmt", "panic_fmt"),
        ("_RNvXs_", "_RNvXs_"),
    ],
)
def test_rust_names(symbol: str, want: str) -> None:
    assert rust_name(symbol) == want
