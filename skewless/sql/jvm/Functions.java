package io.skewless.sql;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.analysis.FunctionRegistry$;
import org.apache.spark.sql.catalyst.analysis.SimpleFunctionRegistry;
import org.apache.spark.sql.catalyst.expressions.ExpressionInfo;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The function allow-list: Spark's built-in functions of the pure groups (they compute a value from
 * their arguments), and a few named ones of the miscellaneous group. Refused, among the built-ins:
 * reflection (reflect, java_method, try_reflect), the storage-path functions (input_file_name,
 * input_file_block_*), and Avro/Protobuf conversions that take a schema or descriptor file path.
 * Temporary and catalog functions are never built-ins, so they are refused too.
 */
final class Functions {
    static final String WHY = "only Spark's built-in functions that compute from their arguments run here";

    private static final Set<String> PURE_GROUPS = Set.of(
            "agg_funcs", "array_funcs", "bitwise_funcs", "collection_funcs", "conditional_funcs", "conversion_funcs",
            "csv_funcs", "datetime_funcs", "generator_funcs", "hash_funcs", "json_funcs", "lambda_funcs",
            "map_funcs", "math_funcs", "predicate_funcs", "string_funcs", "struct_funcs", "url_funcs",
            "variant_funcs", "window_funcs", "xml_funcs", "st_funcs");
    private static final Set<String> MISC_ALLOWED = Set.of(
            "assert_true", "raise_error", "typeof", "uuid", "monotonically_increasing_id", "spark_partition_id",
            "current_catalog", "current_database", "current_schema", "current_user", "session_user", "user",
            "version", "aes_encrypt", "aes_decrypt", "try_aes_decrypt", "approx_top_k_estimate",
            "bitmap_bit_position", "bitmap_bucket_number", "bitmap_count", "hll_sketch_estimate", "hll_union",
            "theta_difference", "theta_intersection", "theta_sketch_estimate", "theta_union",
            "kll_sketch_get_n_bigint", "kll_sketch_get_n_double", "kll_sketch_get_n_float",
            "kll_sketch_get_quantile_bigint", "kll_sketch_get_quantile_double", "kll_sketch_get_quantile_float",
            "kll_sketch_get_rank_bigint", "kll_sketch_get_rank_double", "kll_sketch_get_rank_float",
            "kll_sketch_merge_bigint", "kll_sketch_merge_double", "kll_sketch_merge_float",
            "kll_sketch_to_string_bigint", "kll_sketch_to_string_double", "kll_sketch_to_string_float");

    private static volatile Tables tables;

    private record Tables(Set<String> allowedNames, Set<String> refusedClasses, Map<String, String> names) {
    }

    private Functions() {
    }

    private static Tables tables() {
        Tables t = tables;
        if (t == null) {
            synchronized (Functions.class) {
                if (tables == null) {
                    tables = build();
                }
                t = tables;
            }
        }
        return t;
    }

    private static Tables build() {
        SimpleFunctionRegistry registry = FunctionRegistry$.MODULE$.builtin();
        Set<String> allowed = new HashSet<>();
        Set<String> allowedClasses = new HashSet<>();
        Map<String, String> refused = new HashMap<>();
        List<FunctionIdentifier> ids = CollectionConverters.asJava(registry.listFunction());
        for (FunctionIdentifier id : ids) {
            String name = id.funcName().toLowerCase(Locale.ROOT);
            scala.Option<ExpressionInfo> info = registry.lookupFunction(id);
            if (info.isEmpty()) {
                continue;
            }
            String group = info.get().getGroup();
            String cls = info.get().getClassName();
            if (PURE_GROUPS.contains(group) || MISC_ALLOWED.contains(name)) {
                allowed.add(name);
                allowedClasses.add(cls);
            } else if (cls != null) {
                refused.put(cls, name);
            }
        }
        refused.keySet().removeAll(allowedClasses);
        return new Tables(Set.copyOf(allowed), Set.copyOf(refused.keySet()), Map.copyOf(refused));
    }

    static Set<String> allowedNames() {
        return tables().allowedNames();
    }

    static Set<String> refusedClasses() {
        return tables().refusedClasses();
    }

    static String nameOf(String className) {
        return tables().names().getOrDefault(className, className);
    }
}
