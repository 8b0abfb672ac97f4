//! Compiles DuckDB's ICU extension (vendored in `icu/`, from the sources of the exact engine
//! that libduckdb-sys bundles) against that engine's headers.
//!
//! The file list and include directories are those of `icu/CMakeLists.txt`.
use std::path::PathBuf;

const SOURCES: &[&str] = &[
    "collation/collation_collator.cpp",
    "collation/collation_loader.cpp",
    "collation/collation_normalizer.cpp",
    "collation/generated/collation_data.cpp",
    "datetime/astronomy.cpp",
    "datetime/calendar.cpp",
    "datetime/chinese.cpp",
    "datetime/coptic.cpp",
    "datetime/grego.cpp",
    "datetime/gregorian.cpp",
    "datetime/hebrew.cpp",
    "datetime/islamic.cpp",
    "datetime/japanese.cpp",
    "datetime/persian.cpp",
    "datetime/timezone.cpp",
    "datetime/tz_loader.cpp",
    "datetime/generated/tz_data.cpp",
    "icu_extension.cpp",
    "icu-current.cpp",
    "icu-dateadd.cpp",
    "icu-datefunc.cpp",
    "icu-datepart.cpp",
    "icu-datesub.cpp",
    "icu-datetrunc.cpp",
    "icu-makedate.cpp",
    "icu-list-range.cpp",
    "icu-table-range.cpp",
    "icu-strptime.cpp",
    "icu-timebucket.cpp",
    "icu-timezone.cpp",
];

/// The include directories of DuckDB's vendored libraries (its `manifest.json`, `base`).
const THIRD_PARTY: &[&str] = &[
    "concurrentqueue",
    "fast_float",
    "fastpforlib",
    "fmt/include",
    "fsst",
    "hyperloglog",
    "jaro_winkler",
    "lz4",
    "miniz",
    "pcg",
    "pdqsort",
    "re2",
    "ska_sort",
    "skiplist",
    "tdigest",
    "utf8proc/include",
    "vergesort",
    "yyjson/include",
    "zstd/include",
];

fn main() {
    let include = PathBuf::from(
        std::env::var("DEP_DUCKDB_INCLUDE")
            .expect("libduckdb-sys publishes DEP_DUCKDB_INCLUDE for its bundled build"),
    );
    // <root>/src/include -> <root>/third_party/…: DuckDB's headers include its vendored
    // libraries, and the extension decompresses its time zone and collation tables with the
    // zstd that DuckDB itself links.
    let root = include
        .parent()
        .and_then(|p| p.parent())
        .expect("DEP_DUCKDB_INCLUDE is <duckdb>/src/include");
    let icu = PathBuf::from("icu");
    println!("cargo:rerun-if-changed=icu");
    println!("cargo:rerun-if-changed=src/describe.cpp");
    cc::Build::new()
        .cpp(true)
        .files(SOURCES.iter().map(|f| icu.join(f)))
        .file("src/describe.cpp")
        .include(&include)
        .includes(
            THIRD_PARTY
                .iter()
                .map(|dir| root.join("third_party").join(dir)),
        )
        .include(icu.join("include"))
        .include(icu.join("collation/include"))
        .include(icu.join("datetime/include"))
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-w")
        // Same engine version string as the extensions DuckDB builds in.
        .define("EXT_VERSION_ICU", "\"v2.0.0\"")
        // The bundled DuckDB is built with NDEBUG (see the workspace's release profile):
        // its classes must have the same layout here.
        .define("NDEBUG", None)
        .warnings(false)
        .compile("kura_duckdb_icu");
}
