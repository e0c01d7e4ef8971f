//! Helpers for the inventory's unit tests: an inventory from a text, and its devices,
//! invalid rows and their reasons.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::{parse, Device, InvalidRow, Inventory, InventoryError, InventoryOptions, RowError};

pub(crate) fn inventory(text: impl AsRef<[u8]>) -> Inventory {
    inventory_with(text, &InventoryOptions::default())
}

pub(crate) fn inventory_with(text: impl AsRef<[u8]>, opts: &InventoryOptions) -> Inventory {
    parse(text.as_ref(), opts).unwrap()
}

pub(crate) fn file_error(text: impl AsRef<[u8]>) -> InventoryError {
    parse(text.as_ref(), &InventoryOptions::default()).unwrap_err()
}

pub(crate) fn devices(inv: &Inventory) -> Vec<Device> {
    inv.rows.devices().collect()
}

pub(crate) fn urls(inv: &Inventory) -> Vec<String> {
    devices(inv).iter().map(|d| d.target.base_url()).collect()
}

pub(crate) fn invalid(inv: &Inventory) -> Vec<InvalidRow> {
    inv.rows
        .iter()
        .filter_map(|row| match row {
            super::Row::Invalid(row) => Some(row),
            super::Row::Device(_) => None,
        })
        .collect()
}

/// Each invalid row's line and reason.
pub(crate) fn reasons(inv: &Inventory) -> Vec<(u64, RowError)> {
    invalid(inv)
        .into_iter()
        .map(|r| (r.line, r.reason))
        .collect()
}

/// Each invalid row's message, as reports carry it (`line N: reason`).
pub(crate) fn errors(inv: &Inventory) -> Vec<String> {
    invalid(inv).iter().map(ToString::to_string).collect()
}
