//! How the API finds an object from what a client typed.

use swarm_model::StoreObject;

use super::error::ApiError;
use crate::store::Table;

/// Finds an object by full ID, then exact name, then unique ID prefix, as dockerd does; a
/// prefix that fits several objects is an "ambiguous" error rather than a guess.
pub fn resolve_in<T: StoreObject + Clone>(table: &Table<T>, noun: &str, reference: &str) -> Result<T, ApiError> {
    if let Some(o) = table.get(reference).or_else(|| table.by_name(reference)) {
        return Ok(o.clone());
    }
    let mut matches = table.with_id_prefix(reference);
    match (matches.next(), matches.count()) {
        (Some(o), 0) => Ok(o.clone()),
        (None, _) => Err(ApiError::not_found(format!("{noun} {reference} not found"))),
        (Some(_), others) => Err(ApiError::bad_request(format!(
            "{noun} {reference} is ambiguous ({} {noun}s match this ID prefix)",
            others + 1
        ))),
    }
}
