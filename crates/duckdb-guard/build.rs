//! Compiles the C++ guard against the headers of the DuckDB that libduckdb-sys builds.
fn main() {
    let include = std::env::var("DEP_DUCKDB_INCLUDE")
        .expect("libduckdb-sys publishes DEP_DUCKDB_INCLUDE for its bundled build");
    println!("cargo:rerun-if-changed=src/guard.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/guard.cpp")
        .include(&include)
        .flag_if_supported("-std=c++17")
        .flag_if_supported("-w")
        // The bundled DuckDB is built with NDEBUG (see the workspace's release profile):
        // its classes must have the same layout here.
        .define("NDEBUG", None)
        .warnings(false)
        .compile("kura_duckdb_guard");
}
