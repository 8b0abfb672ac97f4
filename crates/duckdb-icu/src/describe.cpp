// Describes the vendored ICU extension to DuckDB's static-extension registry, the way DuckDB's
// own generated loader describes the extensions it builds in (extension_describe.c.in).
#include "duckdb/main/extension/extension_loader.hpp"
#include "duckdb_static_extension.h"

extern "C" void icu_duckdb_cpp_init(duckdb::ExtensionLoader &loader);

extern "C" {

static int32_t kura_duckdb_icu_describe(duckdb_extension_descriptor *descriptor) {
	if (descriptor->version < 1) {
		descriptor->set_error(descriptor, "extension icu needs descriptor layout 1");
		return 1;
	}
	descriptor->version = 1;
	descriptor->name = "icu";
	descriptor->extension_version = EXT_VERSION_ICU;
	descriptor->api_version = "v2.0.0";
	descriptor->entry_cpp = (void (*)(void))icu_duckdb_cpp_init;
	return 0;
}

// Registers the extension for every database opened afterwards. Returns 0 on success;
// registering again is a no-op.
int32_t kura_duckdb_icu_register(void) {
	return duckdb_register_static_extension(kura_duckdb_icu_describe);
}

} // extern "C"
