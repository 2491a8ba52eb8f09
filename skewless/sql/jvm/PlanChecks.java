package io.skewless.sql;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.catalyst.analysis.UnresolvedFunction;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.analysis.UnresolvedTableValuedFunction;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The parsed-plan check of a bound session, and the helpers it shares with {@link AnalysedPlans}. Both
 * checks are allow-lists: a node, expression or function not known to be read-only is refused by name.
 *
 * <p>Parsed plans ({@link #checkParsed}): every node is a read-only query node, or one of the few
 * commands that only show what the role's views show (DESCRIBE and SHOW COLUMNS of a view, SHOW
 * TABLES); every relation is a single name; every function is a built-in of a pure group.
 *
 * <p>Analysed plans ({@link AnalysedPlans#checkAnalysed}): every leaf is one of the role's temporary views (whose
 * insides the guard trusts: the tool built them), a relation that reads no storage, or Delta's own
 * replay of a log; no command but the allowed ones; no function outside the allow-list.
 */
final class PlanChecks {
    private PlanChecks() {
    }

    static final String WHY_READ_ONLY = "a role runs read queries (SELECT, WITH, VALUES, TABLE), DESCRIBE "
            + "and SHOW COLUMNS of its views and SHOW TABLES, nothing else";
    static final String WHY_VIEWS = "a role reads its views only: no file source, path table or catalog table";

    /** Query nodes of a parsed plan that read only their children. */
    private static final Set<String> PARSED_READ_NODES = Set.of(
            "Project", "Filter", "Join", "LateralJoin", "Aggregate", "UnresolvedHaving", "WithWindowDefinition",
            "Window", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail", "Distinct", "Deduplicate", "Union",
            "Intersect", "Except", "SubqueryAlias", "UnresolvedSubqueryColumnAliases", "UnresolvedWith",
            "UnresolvedInlineTable", "LocalRelation", "OneRowRelation", "Generate", "Pivot", "Unpivot", "Sample",
            "RepartitionByExpression", "Repartition", "UnresolvedHint", "PipeOperator", "UnresolvedTVFAliases",
            "Range");
    /** Table-valued functions that compute rows from their arguments and read nothing. */
    private static final Set<String> TABLE_FUNCTIONS = Set.of(
            "range", "explode", "explode_outer", "inline", "inline_outer", "posexplode", "posexplode_outer",
            "stack", "json_tuple", "variant_explode", "variant_explode_outer");
    /** Unresolved expressions the parser makes for plain queries. */
    private static final Set<String> PARSED_EXPRESSIONS = Set.of(
            "UnresolvedAttribute", "UnresolvedStar", "UnresolvedAlias", "UnresolvedExtractValue", "UnresolvedRegex",
            "UnresolvedOrdinal", "UnresolvedNamedLambdaVariable", "UnresolvedFunction", "MultiAlias",
            "UnresolvedGenerator", "UnresolvedStarExcept");
    static String simpleName(Object o) {
        String name = o.getClass().getName();
        name = name.substring(name.lastIndexOf('.') + 1);
        if (name.endsWith("$")) {  // a Scala object
            name = name.substring(0, name.length() - 1);
        }
        return name.substring(name.lastIndexOf('$') + 1);
    }

    static <T> List<T> list(scala.collection.Seq<T> seq) {
        return CollectionConverters.asJava(seq);
    }

    static QueryRefusedException refuse(String what, String why) {
        return new QueryRefusedException(what, why);
    }

    // ---------------------------------------------------------------- parsed plans

    static void checkParsed(LogicalPlan root, RoleGuard.Lock lock) {
        Deque<LogicalPlan> stack = new ArrayDeque<>();
        stack.push(root);
        while (!stack.isEmpty()) {
            LogicalPlan node = stack.pop();
            String name = simpleName(node);
            if (checkParsedCommand(node, name, lock)) {
                continue;  // checked whole: its children are its target's name
            }
            if (node instanceof UnresolvedRelation rel) {
                List<String> parts = list(rel.multipartIdentifier());
                if (parts.size() != 1 || rel.isStreaming() || !rel.options().isEmpty()) {
                    throw refuse("relation " + String.join(".", parts), WHY_VIEWS);
                }
            } else if (node instanceof UnresolvedTableValuedFunction tvf) {
                List<String> parts = list(tvf.name());
                String fn = String.join(".", parts).toLowerCase(Locale.ROOT);
                if (parts.size() != 1 || !TABLE_FUNCTIONS.contains(fn)) {
                    throw refuse("table function " + fn + "()", "only functions that compute rows from their "
                            + "arguments run here (" + String.join(", ", new java.util.TreeSet<>(TABLE_FUNCTIONS)) + ")");
                }
            } else if (name.equals("RelationTimeTravel")) {
                throw refuse("time travel", "a role reads the current version of its views only");
            } else if (!PARSED_READ_NODES.contains(name)) {
                throw refuse(describe(name, node instanceof Command), WHY_READ_ONLY);
            }
            for (Expression e : list(node.expressions())) {
                checkParsedExpression(e);
            }
            pushAll(stack, node);
        }
    }

    static String describe(String nodeName) {
        return describe(nodeName, false);
    }

    static String describe(String nodeName, boolean command) {
        return switch (nodeName) {
            case "UnresolvedExecuteImmediate" -> "EXECUTE IMMEDIATE";
            case "CompoundBody", "SingleStatement" -> "a SQL script";
            case "PlanWithUnresolvedIdentifier" -> "IDENTIFIER()";
            case "ScriptTransformation" -> "TRANSFORM ... USING";
            default -> command || nodeName.endsWith("Command") || nodeName.endsWith("Statement") ? "command " + nodeName
                    : "statement " + nodeName;
        };
    }

    static void pushAll(Deque<LogicalPlan> stack, LogicalPlan node) {
        for (LogicalPlan child : list(node.children())) {
            stack.push(child);
        }
        for (Object inner : list(node.innerChildren())) {
            if (inner instanceof LogicalPlan p) {
                stack.push(p);
            } else {
                throw refuse("plan part " + simpleName(inner), WHY_READ_ONLY);
            }
        }
        for (LogicalPlan sub : list(node.subqueries())) {
            stack.push(sub);
        }
    }

    /** True when node is an allowed command (checked here); refuses one aimed beyond the views. */
    private static boolean checkParsedCommand(LogicalPlan node, String name, RoleGuard.Lock lock) {
        switch (name) {
            case "ShowTables" -> {
                LogicalPlan ns = list(node.children()).get(0);
                if (!simpleName(ns).equals("CurrentNamespace")) {
                    throw refuse("SHOW TABLES IN another namespace", "a role sees its own views only");
                }
                return true;
            }
            case "DescribeRelation", "DescribeColumn", "ShowColumns" -> {
                for (LogicalPlan target : list(node.children())) {
                    requireOwnView(target, name, lock);
                }
                return true;
            }
            case "SetCatalogAndNamespace" -> {
                requireDefaultNamespace(list(node.children()).get(0), "multipartIdentifier");
                return true;
            }
            default -> {
                return false;
            }
        }
    }

    /**
     * {@code USE default} is what JDBC clients send when they connect; it changes nothing a role can
     * read (its views are temporary views, visible from every namespace). Any other namespace is refused.
     */
    static void requireDefaultNamespace(LogicalPlan target, String accessor) {
        List<String> parts = List.of();
        try {
            parts = list((scala.collection.Seq<String>) target.getClass().getMethod(accessor).invoke(target));
        } catch (ReflectiveOperationException | ClassCastException e) {
            parts = List.of();
        }
        if (parts.size() != 1 || !parts.get(0).equalsIgnoreCase("default")) {
            throw refuse("USE " + (parts.isEmpty() ? simpleName(target) : String.join(".", parts)),
                    "a role stays in the default namespace (its views are visible from there)");
        }
    }

    private static void requireOwnView(LogicalPlan target, String command, RoleGuard.Lock lock) {
        List<String> parts = List.of();
        if (simpleName(target).startsWith("Unresolved")) {
            try {
                Object ident = target.getClass().getMethod("multipartIdentifier").invoke(target);
                parts = list((scala.collection.Seq<String>) ident);
            } catch (ReflectiveOperationException e) {
                parts = List.of();
            }
        }
        if (parts.size() != 1 || !lock.views().contains(parts.get(0).toLowerCase(Locale.ROOT))) {
            String what = parts.isEmpty() ? simpleName(target) : String.join(".", parts);
            throw refuse(command + " " + what, "a role describes its own views only (" + String.join(", ", lock.views()) + ")");
        }
    }

    private static void checkParsedExpression(Expression root) {
        Deque<Expression> stack = new ArrayDeque<>();
        stack.push(root);
        while (!stack.isEmpty()) {
            Expression e = stack.pop();
            String cls = e.getClass().getName();
            String name = simpleName(e);
            if (e instanceof UnresolvedFunction f) {
                List<String> parts = list(f.nameParts());
                String fn = String.join(".", parts).toLowerCase(Locale.ROOT);
                if (parts.size() != 1 || !Functions.allowedNames().contains(fn)) {
                    throw refuse("function " + fn + "()", Functions.WHY);
                }
            } else if (cls.startsWith("org.apache.spark.sql.catalyst.analysis.")) {
                if (!PARSED_EXPRESSIONS.contains(name)) {
                    throw refuse(name.equals("ExpressionWithUnresolvedIdentifier") ? "IDENTIFIER()" : "expression " + name,
                            "only plain names, literals and allowed functions are read here");
                }
            } else if (!cls.startsWith("org.apache.spark.sql.catalyst.expressions.")
                    || Functions.refusedClasses().contains(cls)) {
                throw refuse("expression " + name, Functions.WHY);
            }
            for (Expression child : list(e.children())) {
                stack.push(child);
            }
        }
    }

}
