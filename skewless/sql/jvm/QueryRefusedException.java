package io.skewless.sql;

/** A statement the role guard refused; nothing of it ran. The message says what and why. */
public final class QueryRefusedException extends RuntimeException {
    private final String what;

    QueryRefusedException(String what, String why) {
        super("query refused: " + what + ": " + why);
        this.what = what;
    }

    public String what() {
        return what;
    }
}
