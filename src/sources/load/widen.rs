//! The widening rules: which columns of a file fit the table it loads into. Pure
//! functions of the two column lists (names and DuckDB type names).

use super::LoadError;

/// Which file columns are new; errors if a table column is retyped, or missing from the
/// file when `missing_is_null` is false (a table of the file's own).
pub(super) fn reconcile_columns(
    file: &[(String, String)],
    table: &[(String, String)],
    missing_is_null: bool,
) -> Result<Vec<String>, LoadError> {
    let mut problems = Vec::new();
    for (name, table_ty) in table {
        match file.iter().find(|(n, _)| n == name) {
            None if missing_is_null => {}
            None => problems.push(format!(
                "column {name} ({table_ty}) is missing from the file"
            )),
            Some((_, file_ty)) if !widens(file_ty, table_ty) => problems.push(format!(
                "column {name} is {table_ty} in the table but {file_ty} in the file"
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::SchemaConflict(format!(
            "the file's columns conflict with the table: {}",
            problems.join("; ")
        )));
    }
    Ok(file
        .iter()
        .filter(|(n, _)| !table.iter().any(|(t, _)| t == n))
        .map(|(n, _)| n.clone())
        .collect())
}

/// Whether values of `file_ty` go into a `table_ty` column without loss. VARCHAR values
/// are attempted (the cast fails loudly if one does not fit).
fn widens(file_ty: &str, table_ty: &str) -> bool {
    const INTS: &[&str] = &["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"];
    const UINTS: &[&str] = &["UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"];
    let rank = |list: &[&str], t: &str| list.iter().position(|x| *x == t);
    if file_ty == table_ty || table_ty == "VARCHAR" || file_ty == "VARCHAR" || file_ty == "\"NULL\""
    {
        return true;
    }
    if let (Some(file_element), Some(table_element)) =
        (file_ty.strip_suffix("[]"), table_ty.strip_suffix("[]"))
    {
        return widens(file_element, table_element);
    }
    if let (Some((p1, s1)), Some((p2, s2))) = (decimal(file_ty), decimal(table_ty)) {
        // As many digits after the point, and before it.
        return s1 <= s2 && p1 - s1 <= p2 - s2;
    }
    match (rank(INTS, file_ty), rank(INTS, table_ty)) {
        (Some(a), Some(b)) => return a <= b,
        (Some(_), None) if table_ty == "DOUBLE" || table_ty.starts_with("DECIMAL") => return true,
        _ => {}
    }
    if let (Some(a), Some(b)) = (rank(UINTS, file_ty), rank(UINTS, table_ty)) {
        return a <= b;
    }
    if rank(UINTS, file_ty).is_some()
        && (rank(INTS, table_ty).is_some_and(|b| b >= 3) || table_ty == "DOUBLE")
    {
        return true;
    }
    matches!(
        (file_ty, table_ty),
        ("FLOAT", "DOUBLE") | ("DATE", "TIMESTAMP") | ("DATE", "TIMESTAMP WITH TIME ZONE")
    )
}

/// The precision and scale of a `DECIMAL(p,s)` type.
fn decimal(ty: &str) -> Option<(u32, u32)> {
    let (p, s) = ty
        .strip_prefix("DECIMAL(")?
        .strip_suffix(')')?
        .split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_rules() {
        assert!(widens("INTEGER", "BIGINT"));
        assert!(!widens("BIGINT", "INTEGER"));
        assert!(widens("INTEGER", "DOUBLE"));
        assert!(widens("VARCHAR", "DATE"));
        assert!(widens("DATE", "TIMESTAMP"));
        assert!(!widens("DOUBLE", "BIGINT"));
        assert!(widens("BIGINT", "VARCHAR"));
        assert!(widens("DECIMAL(2,1)", "DECIMAL(10,2)"));
        assert!(!widens("DECIMAL(10,2)", "DECIMAL(10,1)"));
        assert!(!widens("DECIMAL(18,2)", "DECIMAL(10,2)"));
        assert!(widens("INTEGER[]", "BIGINT[]"));
        assert!(!widens("DOUBLE[]", "BIGINT[]"));
    }

    #[test]
    fn missing_and_retyped_columns_conflict_new_ones_widen() {
        let t = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        let table = t(&[("id", "BIGINT"), ("amount", "DOUBLE")]);
        assert_eq!(
            reconcile_columns(
                &t(&[("id", "BIGINT"), ("amount", "DOUBLE"), ("note", "VARCHAR")]),
                &table,
                false
            )
            .unwrap(),
            vec!["note".to_owned()]
        );
        let err = reconcile_columns(&t(&[("id", "BIGINT")]), &table, false).unwrap_err();
        assert!(
            err.to_string().contains("amount (DOUBLE) is missing"),
            "{err}"
        );
        // In a folder's union a missing column is NULL; a retyped one still conflicts.
        assert_eq!(
            reconcile_columns(&t(&[("id", "BIGINT")]), &table, true).unwrap(),
            Vec::<String>::new()
        );
        assert!(reconcile_columns(&t(&[("id", "DOUBLE")]), &table, true).is_err());
        let err = reconcile_columns(&t(&[("id", "DOUBLE"), ("amount", "DOUBLE")]), &table, false)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("id is BIGINT in the table but DOUBLE"),
            "{err}"
        );
    }
}
