package io.skewless.sql;

import java.util.Collections;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.WeakHashMap;

/**
 * Which sessions are bound to a role, and the views each may read. Binding is one-way: there is no
 * unlock, and a bound session cannot be bound again, so the role is fixed for the session's life
 * (SQL cannot reach this class: the guard refuses reflection and every command that could).
 */
public final class RoleGuard {
    /** A session's role and the temporary views (lower case) it may read. */
    public record Lock(String role, Set<String> views) {
    }

    private static final Map<Object, Lock> SESSIONS = Collections.synchronizedMap(new WeakHashMap<>());
    private static volatile Lock application;

    private RoleGuard() {
    }

    /**
     * Bind {@code session} to {@code role}, which may read the temporary views named in
     * {@code viewsCsv} (comma-separated). With {@code wholeApplication}, every other session of this
     * JVM, existing or made later, is bound to the same role with no view at all (fail closed: a new
     * session cannot read anything until it is bound itself, which it cannot be).
     */
    public static synchronized void lock(Object session, String role, String viewsCsv, boolean wholeApplication) {
        if (role == null || role.isEmpty()) {
            throw new IllegalArgumentException("a role is required");
        }
        Lock current = SESSIONS.get(session);
        if (current != null) {
            throw new IllegalStateException("this session is already bound to role '" + current.role() + "'");
        }
        if (application != null && !application.role().equals(role)) {
            throw new IllegalStateException("this application is bound to role '" + application.role() + "'");
        }
        Set<String> views = new TreeSet<>();
        for (String v : viewsCsv.split(",")) {
            if (!v.isBlank()) {
                views.add(v.trim().toLowerCase(Locale.ROOT));
            }
        }
        SESSIONS.put(session, new Lock(role, Collections.unmodifiableSet(views)));
        if (wholeApplication) {
            application = new Lock(role, Collections.emptySet());
        }
    }

    /** The session's binding, else the application's, else null (an unguarded session). */
    public static Lock lockOf(Object session) {
        Lock own = SESSIONS.get(session);
        return own != null ? own : application;
    }

    /** The role a session is bound to, or null. */
    public static String roleOf(Object session) {
        Lock lock = lockOf(session);
        return lock == null ? null : lock.role();
    }
}
