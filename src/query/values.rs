//! Arrow values → JSON and CSV text, written straight into byte buffers.
//!
//! Types survive: integers and floats stay JSON numbers, DECIMAL and HUGEINT are written
//! digit for digit (no float round trip), dates and timestamps become ISO-8601 strings,
//! lists and structs become arrays and objects, maps become objects (or `[key, value]`
//! pairs when a key is not a string). NaN and infinities, which JSON cannot hold, are
//! written as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. A type not handled here is
//! written with Arrow's own display formatter as a string, so nothing is dropped.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::NaiveDate;

/// Writes the value at `row` of `array` as JSON.
pub fn write_json(out: &mut Vec<u8>, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return;
    }
    match array.data_type() {
        DataType::Null => out.extend_from_slice(b"null"),
        DataType::Boolean => out.extend_from_slice(if array.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        DataType::Utf8 => json_string(out, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => json_string(out, array.as_string::<i64>().value(row)),
        DataType::Utf8View => json_string(out, array.as_string_view().value(row)),
        DataType::Float16 => float(
            out,
            f64::from(array.as_primitive::<Float16Type>().value(row)),
            true,
        ),
        DataType::Float32 => float(
            out,
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            true,
        ),
        DataType::Float64 => float(out, array.as_primitive::<Float64Type>().value(row), true),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            json_array(out, list.value(row).as_ref());
        }
        DataType::LargeList(_) => json_array(out, array.as_list::<i64>().value(row).as_ref()),
        DataType::FixedSizeList(..) => {
            json_array(out, array.as_fixed_size_list().value(row).as_ref())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push(b'{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(out, field.name());
                out.push(b':');
                write_json(out, s.column(i).as_ref(), row);
            }
            out.push(b'}');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let string_keys = matches!(
                keys.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            out.push(if string_keys { b'{' } else { b'[' });
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(b',');
                }
                if string_keys {
                    write_json(out, keys.as_ref(), i);
                    out.push(b':');
                    write_json(out, values.as_ref(), i);
                } else {
                    out.push(b'[');
                    write_json(out, keys.as_ref(), i);
                    out.push(b',');
                    write_json(out, values.as_ref(), i);
                    out.push(b']');
                }
            }
            out.push(if string_keys { b'}' } else { b']' });
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            write_json(out, dict.values().as_ref(), key);
        }
        _ => {
            if !write_json_scalar(out, array, row) {
                json_string(out, &fallback_text(array, row));
            }
        }
    }
}

/// Writes the value at `row` of `array` as one CSV field (RFC 4180 quoting).
pub(crate) fn write_csv(out: &mut Vec<u8>, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        return;
    }
    match array.data_type() {
        DataType::Boolean => out.extend_from_slice(if array.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        DataType::Utf8 => csv_string(out, array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => csv_string(out, array.as_string::<i64>().value(row)),
        DataType::Utf8View => csv_string(out, array.as_string_view().value(row)),
        DataType::Float16 => float(
            out,
            f64::from(array.as_primitive::<Float16Type>().value(row)),
            false,
        ),
        DataType::Float32 => float(
            out,
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            false,
        ),
        DataType::Float64 => float(out, array.as_primitive::<Float64Type>().value(row), false),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..) => {
            // Nested values go into one field as JSON text.
            let mut json = Vec::new();
            write_json(&mut json, array, row);
            csv_string(out, &String::from_utf8_lossy(&json));
        }
        DataType::Dictionary(..) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            write_csv(out, dict.values().as_ref(), key);
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            // A blob's text may hold commas or quotes: build it, then quote as a field.
            let mut text = Vec::new();
            scalar_text(&mut text, array, row);
            csv_string(out, &String::from_utf8_lossy(&text));
        }
        _ => {
            if !scalar_text(out, array, row) {
                csv_string(out, &fallback_text(array, row));
            }
        }
    }
}

/// Writes numbers, temporal values and blobs as bare text. Returns false if the type is
/// not one of them. Temporal and binary values are wrapped in quotes when `quote` is set.
fn scalar_text(out: &mut Vec<u8>, array: &dyn Array, row: usize) -> bool {
    scalar_text_quoted(out, array, row, false)
}

fn scalar_text_quoted(out: &mut Vec<u8>, array: &dyn Array, row: usize, quote: bool) -> bool {
    let mut itoa = itoa::Buffer::new();
    macro_rules! int {
        ($t:ty) => {
            out.extend_from_slice(
                itoa.format(array.as_primitive::<$t>().value(row))
                    .as_bytes(),
            )
        };
    }
    let q = |out: &mut Vec<u8>| {
        if quote {
            out.push(b'"')
        }
    };
    match array.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            decimal(out, itoa.format(v), *scale);
        }
        DataType::Decimal256(_, scale) => {
            let v = array.as_primitive::<Decimal256Type>().value(row);
            decimal(out, &v.to_string(), *scale);
        }
        DataType::Date32 => {
            q(out);
            date(
                out,
                i64::from(array.as_primitive::<Date32Type>().value(row)),
            );
            q(out);
        }
        DataType::Date64 => {
            q(out);
            date(
                out,
                array
                    .as_primitive::<Date64Type>()
                    .value(row)
                    .div_euclid(86_400_000),
            );
            q(out);
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            let nanos: i64 = match unit {
                TimeUnit::Second => {
                    i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000_000
                }
                TimeUnit::Millisecond => {
                    i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000_000
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<Time64MicrosecondType>().value(row) * 1_000
                }
                TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(row),
            };
            let secs = u32::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0);
            let frac = u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0);
            q(out);
            if secs < 86_400 {
                clock(out, secs, frac);
            } else {
                out.extend_from_slice(b"24:00:00");
            }
            q(out);
        }
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let (secs, nanos) = match unit {
                TimeUnit::Second => (v, 0),
                TimeUnit::Millisecond => (v.div_euclid(1_000), v.rem_euclid(1_000) * 1_000_000),
                TimeUnit::Microsecond => (v.div_euclid(1_000_000), v.rem_euclid(1_000_000) * 1_000),
                TimeUnit::Nanosecond => (v.div_euclid(1_000_000_000), v.rem_euclid(1_000_000_000)),
            };
            q(out);
            let written = timestamp(out, secs, nanos);
            if !written {
                // DuckDB's infinity timestamps.
                out.extend_from_slice(if v > 0 { b"infinity" } else { b"-infinity" });
            } else if tz.is_some() {
                out.push(b'Z');
            }
            q(out);
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            q(out);
            iso_duration(out, v.months, v.days, v.nanoseconds);
            q(out);
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes: &[u8] = match array.data_type() {
                DataType::Binary => array.as_binary::<i32>().value(row),
                DataType::LargeBinary => array.as_binary::<i64>().value(row),
                DataType::BinaryView => array.as_binary_view().value(row),
                _ => array.as_fixed_size_binary().value(row),
            };
            // DuckDB's own BLOB text form: printable ASCII as is, other bytes as \xNN.
            q(out);
            for &b in bytes {
                if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
                    out.push(b);
                } else {
                    let hex = b"0123456789ABCDEF";
                    out.extend_from_slice(if quote { b"\\\\x" } else { b"\\x" });
                    out.push(hex[usize::from(b >> 4)]);
                    out.push(hex[usize::from(b & 15)]);
                }
            }
            q(out);
        }
        _ => return false,
    }
    true
}

/// Writes a JSON scalar that `write_json` did not handle itself.
fn write_json_scalar(out: &mut Vec<u8>, array: &dyn Array, row: usize) -> bool {
    scalar_text_quoted(out, array, row, true)
}

fn json_array(out: &mut Vec<u8>, values: &dyn Array) {
    out.push(b'[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, values, i);
    }
    out.push(b']');
}

fn fallback_text(array: &dyn Array, row: usize) -> String {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => f.value(row).to_string(),
        Err(e) => format!("<unprintable {}: {e}>", array.data_type()),
    }
}

fn float(out: &mut Vec<u8>, v: f64, json: bool) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let s = buf.format_finite(v);
        // ryu writes 1.0 as "1.0" and 1e20 as "1e20": both valid JSON and CSV numbers.
        out.extend_from_slice(s.as_bytes());
    } else {
        let s: &[u8] = if v.is_nan() {
            b"NaN"
        } else if v > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        };
        if json {
            out.push(b'"');
            out.extend_from_slice(s);
            out.push(b'"');
        } else {
            out.extend_from_slice(s);
        }
    }
}

/// Places the decimal point `scale` digits from the right of an integer's digits.
fn decimal(out: &mut Vec<u8>, digits: &str, scale: i8) {
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if neg {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        out.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

/// Writes `YYYY-MM-DD` for days since 1970-01-01 (proleptic Gregorian), without
/// allocating; false for years outside 0..=9999.
fn write_date(out: &mut Vec<u8>, days_since_epoch: i64) -> bool {
    // Howard Hinnant's civil_from_days.
    let z = days_since_epoch + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return false;
    }
    zero_padded(out, year.unsigned_abs(), 4);
    out.push(b'-');
    zero_padded(out, month.unsigned_abs(), 2);
    out.push(b'-');
    zero_padded(out, day.unsigned_abs(), 2);
    true
}

/// Writes the last `width` decimal digits of `v`, zero-padded.
fn zero_padded(out: &mut Vec<u8>, v: u64, width: u32) {
    for i in (0..width).rev() {
        out.push(b'0' + ((v / 10_u64.pow(i)) % 10) as u8);
    }
}

fn date(out: &mut Vec<u8>, days_since_epoch: i64) {
    if !write_date(out, days_since_epoch) {
        match i32::try_from(days_since_epoch + 719_163)
            .ok()
            .and_then(NaiveDate::from_num_days_from_ce_opt)
        {
            Some(d) => out.extend_from_slice(d.format("%Y-%m-%d").to_string().as_bytes()),
            None => out.extend_from_slice(if days_since_epoch > 0 {
                b"infinity"
            } else {
                b"-infinity"
            }),
        }
    }
}

/// `HH:MM:SS` plus the fraction in 3, 6 or 9 digits, as few as exact.
fn clock(out: &mut Vec<u8>, secs_of_day: u32, nanos: u32) {
    zero_padded(out, u64::from(secs_of_day / 3600), 2);
    out.push(b':');
    zero_padded(out, u64::from(secs_of_day / 60 % 60), 2);
    out.push(b':');
    zero_padded(out, u64::from(secs_of_day % 60), 2);
    if nanos > 0 {
        let (value, width) = if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, 3)
        } else if nanos.is_multiple_of(1000) {
            (nanos / 1000, 6)
        } else {
            (nanos, 9)
        };
        out.push(b'.');
        zero_padded(out, u64::from(value), width);
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]`, like [`date`]: the fast path for years 0..=9999, chrono
/// for the rest (with a sign and more digits); false only for DuckDB's infinities.
fn timestamp(out: &mut Vec<u8>, secs: i64, nanos: i64) -> bool {
    let start = out.len();
    if write_date(out, secs.div_euclid(86_400)) {
        out.push(b'T');
        let secs_of_day = u32::try_from(secs.rem_euclid(86_400)).unwrap_or(0);
        clock(out, secs_of_day, u32::try_from(nanos).unwrap_or(0));
        return true;
    }
    out.truncate(start);
    match chrono::DateTime::from_timestamp(secs, u32::try_from(nanos).unwrap_or(0)) {
        Some(t) => {
            let text = t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string();
            out.extend_from_slice(text.as_bytes());
            true
        }
        None => false,
    }
}

/// ISO-8601 duration: `P1Y2M3DT4H5M6.5S`; zero is `PT0S`.
fn iso_duration(out: &mut Vec<u8>, months: i32, days: i32, nanos: i64) {
    use std::io::Write;
    out.push(b'P');
    let (y, m) = (months / 12, months % 12);
    if y != 0 {
        let _ = write!(out, "{y}Y");
    }
    if m != 0 {
        let _ = write!(out, "{m}M");
    }
    if days != 0 {
        let _ = write!(out, "{days}D");
    }
    if nanos != 0 || (months == 0 && days == 0) {
        out.push(b'T');
        let neg = nanos < 0;
        let n = nanos.unsigned_abs();
        let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
        let (mi, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
        let sign = if neg { "-" } else { "" };
        if h != 0 {
            let _ = write!(out, "{sign}{h}H");
        }
        if mi != 0 {
            let _ = write!(out, "{sign}{mi}M");
        }
        if rest != 0 || (h == 0 && mi == 0) {
            let secs = rest / 1_000_000_000;
            let frac = rest % 1_000_000_000;
            if frac == 0 {
                let _ = write!(out, "{sign}{secs}S");
            } else {
                let f = format!("{frac:09}");
                let _ = write!(out, "{sign}{secs}.{}S", f.trim_end_matches('0'));
            }
        }
    }
}

/// Writes `s` as a JSON string literal.
pub(crate) fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = std::io::Write::write_fmt(out, format_args!("\\u{b:04x}"));
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes `s` as a CSV field, quoted only when it must be.
pub(crate) fn csv_string(out: &mut Vec<u8>, s: &str) {
    let needs = s.is_empty()
        || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
        || s.starts_with(' ')
        || s.ends_with(' ');
    if !needs {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for part in s.split('"').enumerate() {
        if part.0 > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.1.as_bytes());
    }
    out.push(b'"');
}

/// DuckDB's name for the Arrow type DuckDB exported a column as.
pub(crate) fn type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "NULL".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(unit, tz) => {
            let base = match unit {
                TimeUnit::Second => "TIMESTAMP_S",
                TimeUnit::Millisecond => "TIMESTAMP_MS",
                TimeUnit::Microsecond => "TIMESTAMP",
                TimeUnit::Nanosecond => "TIMESTAMP_NS",
            };
            if tz.is_some() {
                "TIMESTAMP WITH TIME ZONE".into()
            } else {
                base.into()
            }
        }
        DataType::Interval(_) | DataType::Duration(_) => "INTERVAL".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("{}[]", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => format!("{}[{n}]", type_name(f.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
                .collect();
            format!("STRUCT({})", inner.join(", "))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "MAP({}, {})",
                    type_name(kv[0].data_type()),
                    type_name(kv[1].data_type())
                )
            }
            other => format!("MAP({other})"),
        },
        DataType::Dictionary(_, v) => type_name(v),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(
            s(|o| decimal(o, "123456789012345678901234567890", 3)),
            "123456789012345678901234567.890"
        );
        assert_eq!(s(|o| decimal(o, "-5", 2)), "-0.05");
        assert_eq!(s(|o| decimal(o, "7", 0)), "7");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(
            s(|o| json_string(o, "a\"b\\c\nd\u{1}")),
            r#""a\"b\\c\nd\u0001""#
        );
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(s(|o| csv_string(o, "plain")), "plain");
        assert_eq!(s(|o| csv_string(o, "a,b")), "\"a,b\"");
        assert_eq!(s(|o| csv_string(o, "say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(s(|o| csv_string(o, "")), "\"\"");
    }

    #[test]
    fn dates_and_timestamps_match_chrono() {
        for days in [-719_528_i64, -1, 0, 59, 60, 10_957, 19_723, 2_932_896] {
            let expected = chrono::DateTime::from_timestamp(days * 86_400, 0)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(s(|o| date(o, days)), expected, "{days}");
        }
        assert_eq!(
            s(|o| assert!(timestamp(o, 1_704_164_645, 500_000_000))),
            "2024-01-02T03:04:05.500"
        );
        assert_eq!(s(|o| assert!(timestamp(o, -1, 0))), "1969-12-31T23:59:59");
        assert_eq!(
            s(|o| assert!(timestamp(o, 0, 123_456_000))),
            "1970-01-01T00:00:00.123456"
        );
        assert_eq!(s(|o| assert!(!timestamp(o, i64::MAX / 2, 0))), "");
        // Year 10000: past the fast path, printed by chrono.
        assert_eq!(
            s(|o| assert!(timestamp(o, 253_402_300_800, 0))),
            "+10000-01-01T00:00:00"
        );
    }

    #[test]
    fn durations_are_iso_8601() {
        assert_eq!(s(|o| iso_duration(o, 14, 3, 0)), "P1Y2M3D");
        assert_eq!(s(|o| iso_duration(o, 0, 0, 90_500_000_000)), "PT1M30.5S");
        assert_eq!(s(|o| iso_duration(o, 0, 0, 0)), "PT0S");
    }

    #[test]
    fn non_finite_floats_are_strings_in_json() {
        assert_eq!(s(|o| float(o, f64::NAN, true)), "\"NaN\"");
        assert_eq!(s(|o| float(o, f64::NEG_INFINITY, false)), "-Infinity");
        assert_eq!(s(|o| float(o, 1.5, true)), "1.5");
    }
}
