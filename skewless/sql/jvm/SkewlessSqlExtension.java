package io.skewless.sql;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * The role guard as a Spark SQL extension ({@code spark.sql.extensions}). It wraps the session's
 * parser (listed after Delta's, so Delta's commands are parsed before the guard sees them) and adds a
 * check rule on analysed plans. Both do nothing until {@link RoleGuard#lock} binds the session (or
 * the whole application) to a role; from then on every statement of the session, whichever way it
 * arrives (spark.sql, the DataFrame API, the Thrift server), passes {@link PlanChecks} or fails before
 * it is analysed (parser) or run (check rule).
 */
public final class SkewlessSqlExtension extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectParser(new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
            @Override
            public ParserInterface apply(SparkSession session, ParserInterface delegate) {
                return new GuardedParser(session, delegate);
            }
        });
        extensions.injectCheckRule(new AbstractFunction1<SparkSession, scala.Function1<LogicalPlan, BoxedUnit>>() {
            @Override
            public scala.Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
                return new AbstractFunction1<LogicalPlan, BoxedUnit>() {
                    @Override
                    public BoxedUnit apply(LogicalPlan plan) {
                        RoleGuard.Lock lock = RoleGuard.lockOf(session);
                        if (lock != null) {
                            AnalysedPlans.checkAnalysed(plan, lock);
                        }
                        return BoxedUnit.UNIT;
                    }
                };
            }
        });
        return BoxedUnit.UNIT;
    }
}
