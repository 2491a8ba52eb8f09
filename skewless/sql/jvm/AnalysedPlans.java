package io.skewless.sql;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;
import java.util.Set;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.View;
import org.apache.spark.sql.execution.datasources.LogicalRelation;

/**
 * The analysed-plan check of a bound session (a check rule: it runs after analysis resolved names and
 * before anything executes). Every leaf is one of the role's temporary views, a relation that reads no
 * storage, or Delta's own replay of a log; no command but the allowed ones; no refused function.
 */
final class AnalysedPlans {
    private AnalysedPlans() {
    }

    /** Leaves of an analysed plan that read no storage, or only Delta's replay of a table's log. */
    private static final Set<String> ANALYSED_LEAVES = Set.of(
            "LocalRelation", "OneRowRelation", "Range", "CTERelationRef", "LogicalRDD", "CommandResult");
    /** Commands of an analysed plan that only show the role's views (their targets are checked). */
    private static final Set<String> ANALYSED_COMMANDS = Set.of(
            "DescribeTableCommand", "DescribeColumnCommand", "ShowColumnsCommand", "ShowTablesCommand",
            "ShowTables", "DescribeRelation", "DescribeColumn", "ShowColumns", "SetCatalogAndNamespace");

    static void checkAnalysed(LogicalPlan root, RoleGuard.Lock lock) {
        Deque<LogicalPlan> stack = new ArrayDeque<>();
        stack.push(root);
        while (!stack.isEmpty()) {
            LogicalPlan node = stack.pop();
            String name = PlanChecks.simpleName(node);
            if (node instanceof View view) {
                String table = view.desc().identifier().table().toLowerCase(Locale.ROOT);
                if (!view.isTempView() || !lock.views().contains(table)) {
                    throw PlanChecks.refuse("view " + table, "not one of the role's views (" + String.join(", ", lock.views()) + ")");
                }
                continue;  // inside is the role's view itself: built by the tool before the session was bound
            }
            if (name.equals("ResolvedTempView")) {  // the catalog API's look-up of a view: its name and schema
                String view = tempViewName(node);
                if (view == null || !lock.views().contains(view)) {
                    throw PlanChecks.refuse("view " + view, "not one of the role's views (" + String.join(", ", lock.views()) + ")");
                }
                continue;
            }
            if (node instanceof Command) {
                if (!ANALYSED_COMMANDS.contains(name)) {
                    throw PlanChecks.refuse(PlanChecks.describe(name), PlanChecks.WHY_READ_ONLY);
                }
                checkAnalysedCommand(node, name, lock);
                continue;
            }
            if (node.children().isEmpty() && !ANALYSED_LEAVES.contains(name) && !isDeltaLogReplay(node)) {
                throw PlanChecks.refuse("relation " + name, PlanChecks.WHY_VIEWS);
            }
            for (Expression e : PlanChecks.list(node.expressions())) {
                checkAnalysedExpression(e);
            }
            PlanChecks.pushAll(stack, node);
        }
    }

    private static String tempViewName(LogicalPlan node) {
        try {
            org.apache.spark.sql.connector.catalog.Identifier ident =
                    (org.apache.spark.sql.connector.catalog.Identifier) node.getClass().getMethod("identifier").invoke(node);
            if (ident.namespace().length != 0) {
                return String.join(".", ident.namespace()) + "." + ident.name();  // a global temp view: never the role's
            }
            return ident.name().toLowerCase(Locale.ROOT);
        } catch (ReflectiveOperationException | ClassCastException e) {
            return null;
        }
    }

    /** Delta reads a table's log through its own file index; nothing a query can name makes one. */
    private static boolean isDeltaLogReplay(LogicalPlan node) {
        return node instanceof LogicalRelation rel
                && rel.relation() instanceof org.apache.spark.sql.execution.datasources.HadoopFsRelation fs
                && fs.location().getClass().getName().equals("org.apache.spark.sql.delta.DeltaLogFileIndex");
    }

    private static void checkAnalysedCommand(LogicalPlan node, String name, RoleGuard.Lock lock) {
        String target = null;
        try {
            switch (name) {
                case "DescribeTableCommand", "DescribeColumnCommand" -> target = tableOf(node, "table");
                case "ShowColumnsCommand" -> target = tableOf(node, "tableName");
                case "ShowTablesCommand" -> {
                    Object db = node.getClass().getMethod("databaseName").invoke(node);
                    if (((scala.Option<?>) db).isDefined()) {
                        throw PlanChecks.refuse("SHOW TABLES IN another namespace", "a role sees its own views only");
                    }
                    return;
                }
                case "SetCatalogAndNamespace" -> {
                    PlanChecks.requireDefaultNamespace(PlanChecks.list(node.children()).get(0), "namespace");
                    return;
                }
                default -> {
                    for (LogicalPlan child : PlanChecks.list(node.children())) {
                        if (!PlanChecks.simpleName(child).equals("ResolvedNamespace") && !PlanChecks.simpleName(child).equals("ResolvedTempView")) {
                            throw PlanChecks.refuse(PlanChecks.describe(name) + " of " + PlanChecks.simpleName(child), PlanChecks.WHY_READ_ONLY);
                        }
                        if (PlanChecks.simpleName(child).equals("ResolvedTempView")) {
                            Object ident = child.getClass().getMethod("identifier").invoke(child);
                            target = ident.toString();
                        }
                    }
                    return;
                }
            }
        } catch (ReflectiveOperationException e) {
            throw PlanChecks.refuse(PlanChecks.describe(name), "its target could not be checked");
        }
        if (target == null || !lock.views().contains(target.toLowerCase(Locale.ROOT))) {
            throw PlanChecks.refuse(name + " " + target, "a role describes its own views only (" + String.join(", ", lock.views()) + ")");
        }
    }

    private static String tableOf(LogicalPlan node, String accessor) throws ReflectiveOperationException {
        Object ident = node.getClass().getMethod(accessor).invoke(node);
        org.apache.spark.sql.catalyst.TableIdentifier t = (org.apache.spark.sql.catalyst.TableIdentifier) ident;
        if (t.database().isDefined() || t.catalog().isDefined()) {
            return t.unquotedString();
        }
        return t.table();
    }

    private static void checkAnalysedExpression(Expression root) {
        Deque<Expression> stack = new ArrayDeque<>();
        stack.push(root);
        while (!stack.isEmpty()) {
            Expression e = stack.pop();
            if (Functions.refusedClasses().contains(e.getClass().getName())) {
                throw PlanChecks.refuse("function " + Functions.nameOf(e.getClass().getName()) + "()", Functions.WHY);
            }
            for (Expression child : PlanChecks.list(e.children())) {
                stack.push(child);
            }
        }
    }
}
