// Layer 2 of Kura's query lockdown (DESIGN.md §3), inside the engine.
//
// DuckDB's settings are instance-wide, and an instance may always read and write its own
// database files, WAL and temp directory, even with enable_external_access off. Kura's
// query workers are connections of the writer's instance, so settings alone cannot keep
// user SQL away from the warehouse file. This guard works per connection (ClientContext):
//
// 1. the connection's file system is replaced by one that refuses every file operation
//    (user SQL never needs a file: spilling goes through the instance's own file system);
// 2. after planning, only SELECT, EXPLAIN without ANALYZE and the transaction statements
//    Kura itself sends may be prepared (ClientContextState::OnFinalizePrepare);
// 3. before optimisation, the bound logical plan is walked (an optimizer extension, which
//    sees exactly what will run, after macros and views are expanded): writes and DDL,
//    table functions outside a short allowlist, and functions that read settings,
//    variables or plan other SQL are refused.
//
// Only connections marked with kura_guard_lock_connection are checked; the writer and
// Kura's own catalog reads are not.

#include "duckdb.hpp"
#include "duckdb/common/file_opener.hpp"
#include "duckdb/common/opener_file_system.hpp"
#include "duckdb/main/capi/capi_internal.hpp"
#include "duckdb/main/client_context.hpp"
#include "duckdb/main/client_context_state.hpp"
#include "duckdb/main/client_data.hpp"
#include "duckdb/main/connection_manager.hpp"
#include "duckdb/main/prepared_statement_data.hpp"
#include "duckdb/execution/physical_plan_generator.hpp"
#include "duckdb/optimizer/optimizer_extension.hpp"
#include "duckdb/planner/expression/bound_aggregate_expression.hpp"
#include "duckdb/planner/expression/bound_function_expression.hpp"
#include "duckdb/planner/logical_operator.hpp"
#include "duckdb/planner/logical_operator_visitor.hpp"
#include "duckdb/planner/operator/logical_get.hpp"

#include <cstring>
#include <string>

namespace {

using namespace duckdb;

const char *const STATE_KEY = "kura_guard";

PermissionException Refusal(const string &what) {
	return PermissionException("Kura's engine guard refused this statement: %s", what);
}

// ---------------------------------------------------------------- 1. no files

class DeniedFileSystem : public FileSystem {
public:
	[[noreturn]] static void Deny(const string &path) {
		throw PermissionException("Kura's query connections may not touch files (\"%s\")", path);
	}
	unique_ptr<FileHandle> OpenFile(const string &path, FileOpenFlags, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	unique_ptr<FileHandle> OpenFileExtended(const OpenFileInfo &path, FileOpenFlags,
	                                        optional_ptr<FileOpener>) override {
		Deny(path.path);
	}
	bool SupportsOpenFileExtended() const override {
		return true;
	}
	unique_ptr<MemoryMappedFile> MemoryMapFile(const OpenFileInfo &path, FileOpenFlags, const MMapOptions &,
	                                           optional_ptr<FileOpener>) override {
		Deny(path.path);
	}
	bool DirectoryExists(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	void CreateDirectory(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	void RemoveDirectory(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	bool ListFiles(const string &path, const std::function<void(const string &, bool)> &, FileOpener *) override {
		Deny(path);
	}
	void MoveFile(const string &source, const string &, optional_ptr<FileOpener>) override {
		Deny(source);
	}
	bool FileExists(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	bool IsPipe(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	void RemoveFile(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	bool TryRemoveFile(const string &path, optional_ptr<FileOpener>) override {
		Deny(path);
	}
	vector<OpenFileInfo> Glob(const string &path, FileOpener *) override {
		Deny(path);
	}
	unique_ptr<MultiFileList> GlobFilesExtended(const string &path, const FileGlobInput &,
	                                            optional_ptr<FileOpener>) override {
		Deny(path);
	}
	bool SupportsGlobExtended() const override {
		return true;
	}
	bool CanHandleFile(const string &) override {
		return true;
	}
	std::string GetName() const override {
		return "KuraDeniedFileSystem";
	}
};

class GuardedClientFileSystem : public OpenerFileSystem {
public:
	explicit GuardedClientFileSystem(ClientContext &context_p) : context(context_p) {
	}
	FileSystem &GetFileSystem() const override {
		return denied;
	}
	optional_ptr<FileOpener> GetOpener() const override {
		return ClientData::Get(context).file_opener.get();
	}

private:
	ClientContext &context;
	mutable DeniedFileSystem denied;
};

// ---------------------------------------------------------------- 3. the plan

bool StartsWith(const string &s, const char *prefix) {
	return s.compare(0, strlen(prefix), prefix) == 0;
}

// Table functions a guarded connection may scan. seq_scan is a table; the duckdb_* ones
// serve information_schema, SHOW and DESCRIBE and hold no paths or settings.
bool TableFunctionAllowed(const string &name) {
	static const char *const allowed[] = {
	    "seq_scan",       "range",          "generate_series", "unnest",        "json_each",
	    "json_tree",      "duckdb_tables",  "duckdb_columns",  "duckdb_schemas", "duckdb_views",
	    "duckdb_constraints", "duckdb_types", "duckdb_indexes", "duckdb_keywords", "describe",
	    "summary",        "pragma_table_info", "pragma_show", "show", "show_tables", "show_databases_allowed_never"};
	for (auto candidate : allowed) {
		if (name == candidate) {
			return true;
		}
	}
	return false;
}

// Functions that read settings, variables, secrets or the environment, or plan other SQL.
bool ScalarFunctionDenied(const string &name) {
	static const char *const denied[] = {"current_setting", "getvariable", "getenv",
	                                     "json_serialize_plan", "json_deserialize_sql",
	                                     "json_execute_serialized_sql", "which_secret", "query",
	                                     "query_table", "current_setting_value"};
	for (auto candidate : denied) {
		if (name == candidate) {
			return true;
		}
	}
	return StartsWith(name, "read_") || StartsWith(name, "write_");
}

// (LOGICAL_PREPARE and LOGICAL_EXECUTE wrap a statement that is itself planned and checked:
// the C API prepares statements with parameters that way.)
bool OperatorDenied(LogicalOperatorType type) {
	switch (type) {
	case LogicalOperatorType::LOGICAL_COPY_TO_FILE:
	case LogicalOperatorType::LOGICAL_COPY_DATABASE:
	case LogicalOperatorType::LOGICAL_INSERT:
	case LogicalOperatorType::LOGICAL_DELETE:
	case LogicalOperatorType::LOGICAL_UPDATE:
	case LogicalOperatorType::LOGICAL_MERGE_INTO:
	case LogicalOperatorType::LOGICAL_TRIGGER:
	case LogicalOperatorType::LOGICAL_ALTER:
	case LogicalOperatorType::LOGICAL_CREATE_TABLE:
	case LogicalOperatorType::LOGICAL_CREATE_INDEX:
	case LogicalOperatorType::LOGICAL_CREATE_SEQUENCE:
	case LogicalOperatorType::LOGICAL_CREATE_VIEW:
	case LogicalOperatorType::LOGICAL_CREATE_SCHEMA:
	case LogicalOperatorType::LOGICAL_CREATE_MACRO:
	case LogicalOperatorType::LOGICAL_DROP:
	case LogicalOperatorType::LOGICAL_PRAGMA:
	case LogicalOperatorType::LOGICAL_CREATE_TYPE:
	case LogicalOperatorType::LOGICAL_ATTACH:
	case LogicalOperatorType::LOGICAL_DETACH:
	case LogicalOperatorType::LOGICAL_CREATE_TRIGGER:
	case LogicalOperatorType::LOGICAL_EXPORT:
	case LogicalOperatorType::LOGICAL_VACUUM:
	case LogicalOperatorType::LOGICAL_SET:
	case LogicalOperatorType::LOGICAL_LOAD:
	case LogicalOperatorType::LOGICAL_RESET:
	case LogicalOperatorType::LOGICAL_UPDATE_EXTENSIONS:
	case LogicalOperatorType::LOGICAL_CONNECT:
	case LogicalOperatorType::LOGICAL_DISCONNECT:
	case LogicalOperatorType::LOGICAL_EXTERNAL_RESOURCE:
	case LogicalOperatorType::LOGICAL_CREATE_SECRET:
	case LogicalOperatorType::LOGICAL_EXTENSION_OPERATOR:
		return true;
	default:
		return false;
	}
}

class PlanCheck : public LogicalOperatorVisitor {
public:
	void VisitOperator(LogicalOperator &op) override {
		if (OperatorDenied(op.type)) {
			throw Refusal("the plan contains " + LogicalOperatorToString(op.type));
		}
		if (op.type == LogicalOperatorType::LOGICAL_GET) {
			auto &get = op.Cast<LogicalGet>();
			auto &name = get.function.GetName().GetIdentifierName();
			if (!TableFunctionAllowed(name)) {
				throw Refusal("the table function " + name + "() is not allowed");
			}
		}
		VisitOperatorExpressions(op);
		VisitOperatorChildren(op);
	}

	void VisitExpression(unique_ptr<Expression> *expression) override {
		auto &expr = **expression;
		if (expr.GetExpressionClass() == ExpressionClass::BOUND_FUNCTION) {
			CheckScalar(expr.Cast<BoundFunctionExpression>().Function().GetName().GetIdentifierName());
		} else if (expr.GetExpressionClass() == ExpressionClass::BOUND_AGGREGATE) {
			CheckScalar(expr.Cast<BoundAggregateExpression>().Function().GetName().GetIdentifierName());
		}
		VisitExpressionChildren(expr);
	}

private:
	static void CheckScalar(const string &name) {
		if (ScalarFunctionDenied(name)) {
			throw Refusal("the function " + name + "() is not allowed");
		}
	}
};

// ---------------------------------------------------------------- 2. the statement

class GuardState : public ClientContextState {
public:
	void QueryBegin(ClientContext &) override {
		plan_checked = false;
	}

	RebindQueryInfo OnFinalizePrepare(ClientContext &, PreparedStatementData &prepared,
	                                  PreparedStatementMode) override {
		bool checked = plan_checked;
		plan_checked = false;
		switch (prepared.statement_type) {
		case StatementType::TRANSACTION_STATEMENT:
			// Kura's own BEGIN TRANSACTION READ ONLY / ROLLBACK around each query.
			return RebindQueryInfo::DO_NOT_REBIND;
		case StatementType::SELECT_STATEMENT:
			break;
		case StatementType::EXPLAIN_STATEMENT:
			if (prepared.physical_plan && prepared.physical_plan->Root().type == PhysicalOperatorType::EXPLAIN_ANALYZE) {
				throw Refusal("EXPLAIN ANALYZE runs the statement");
			}
			break;
		default:
			throw Refusal(StatementTypeToString(prepared.statement_type) + " is not a read-only query");
		}
		if (!checked) {
			throw Refusal("its plan could not be checked");
		}
		return RebindQueryInfo::DO_NOT_REBIND;
	}

	// Written on the connection's own thread, between QueryBegin and OnFinalizePrepare.
	bool plan_checked = false;
};

void PreOptimize(OptimizerExtensionInput &input, unique_ptr<LogicalOperator> &plan) {
	auto state = input.context.registered_state->Get<GuardState>(STATE_KEY);
	if (!state) {
		return;
	}
	PlanCheck check;
	check.VisitOperator(*plan);
	state->plan_checked = true;
}

DatabaseInstance *Instance(duckdb_database database) {
	auto wrapper = reinterpret_cast<DatabaseWrapper *>(database);
	if (!wrapper || !wrapper->database) {
		return nullptr;
	}
	return wrapper->database->instance.get();
}

void CopyError(const std::string &message, char *out, size_t out_len) {
	if (!out || out_len == 0) {
		return;
	}
	auto n = message.size() < out_len - 1 ? message.size() : out_len - 1;
	memcpy(out, message.data(), n);
	out[n] = '\0';
}

} // namespace

extern "C" {

// Registers the plan check on the instance. Returns 0 on success.
int kura_guard_install(duckdb_database database, char *error, size_t error_len) {
	try {
		auto db = Instance(database);
		if (!db) {
			CopyError("no database", error, error_len);
			return 1;
		}
		OptimizerExtension extension;
		extension.pre_optimize_function = PreOptimize;
		OptimizerExtension::Register(db->config, std::move(extension));
		return 0;
	} catch (std::exception &ex) {
		CopyError(ErrorData(ex).Message(), error, error_len);
		return 1;
	}
}

// Locks down the connection whose id is `connection_id`. Returns 0 on success.
int kura_guard_lock_connection(duckdb_database database, uint64_t connection_id, char *error, size_t error_len) {
	try {
		auto db = Instance(database);
		if (!db) {
			CopyError("no database", error, error_len);
			return 1;
		}
		for (auto &context : ConnectionManager::Get(*db).GetConnectionList()) {
			if (context->GetConnectionId() != connection_id) {
				continue;
			}
			ClientData::Get(*context).client_file_system = make_uniq<GuardedClientFileSystem>(*context);
			context->registered_state->Insert(STATE_KEY, make_shared_ptr<GuardState>());
			return 0;
		}
		CopyError("no connection with id " + std::to_string(connection_id), error, error_len);
		return 1;
	} catch (std::exception &ex) {
		CopyError(ErrorData(ex).Message(), error, error_len);
		return 1;
	}
}

} // extern "C"
