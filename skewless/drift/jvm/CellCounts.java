package io.skewless.drift;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.expressions.Aggregator;
import org.apache.spark.sql.functions;

/**
 * Drift's profile of one slice in a single pass: every feature's cell counts, null counts and
 * feature_status counts, accumulated in place per row (no exploded row per value, no shuffle of
 * values: one buffer per segment and task, merged once).
 *
 * Guarantees, matching skewless/drift/profile.py's cell keys:
 * - numeric feature i with distinct sorted cuts g_1 < ... < g_K: a value v has key 2L if v == g_L and
 *   2L + 1 otherwise, L = #cuts <= v; a missing value (NaN on input: the caller maps null to NaN, and
 *   NaN never reaches here as a value) has key 0. Counts are exact.
 * - categorical feature j (index nn + j): key 1 with the value, key 0 for null. Exact for the first
 *   MAX_DISTINCT distinct values a buffer meets; a value first met after that is counted under TAIL
 *   (totals stay exact, a memory bound for identifier-like features). The output keeps the `cap`
 *   largest values (ties by value) and sums the rest under TAIL.
 * - a feature_status entry (feature, status) has f = -1, k = -1, s = feature + "\0" + status.
 */
public final class CellCounts extends Aggregator<CellCounts.In, CellCounts.Buffer, CellCounts.Out> {
    static final String TAIL = "__tail__";
    static final String SEP = "\u0000";
    static final int MAX_DISTINCT = 100_000;

    private final double[][] cuts;
    private final int categorical;
    private final int cap;

    CellCounts(double[][] cuts, int categorical, int cap) {
        this.cuts = cuts;
        this.categorical = categorical;
        this.cap = cap;
    }

    /**
     * Registers the aggregate for these cuts under `name` (a temporary function of this session) and
     * returns its argument order: the input bean's field names, which the caller passes in that order.
     */
    public static String[] register(SparkSession spark, String name, String cutsJson, int categorical, int cap)
            throws java.io.IOException {
        // Python's json writes +-Infinity as such (a dataset version may hold them; feature_logs cannot).
        ObjectMapper json = new ObjectMapper().enable(JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS);
        double[][] cuts = json.readValue(cutsJson, double[][].class);
        for (double[] c : cuts) {
            for (int i = 0; i < c.length; i++) {
                c[i] = c[i] + 0.0;  // -0.0 becomes 0.0: equal values, one cell (Spark's `=` agrees)
            }
        }
        Encoder<In> input = Encoders.bean(In.class);
        spark.udf().register(name, functions.udaf(new CellCounts(cuts, categorical, cap), input));
        return input.schema().fieldNames();
    }

    /** One row: numeric values (NaN: missing), categorical values (null: missing), feature statuses. */
    public static final class In implements Serializable {
        private double[] num;
        private String[] cat;
        private Map<String, String> status;

        public double[] getNum() { return num; }
        public void setNum(double[] v) { num = v; }
        public String[] getCat() { return cat; }
        public void setCat(String[] v) { cat = v; }
        public Map<String, String> getStatus() { return status; }
        public void setStatus(Map<String, String> v) { status = v; }
    }

    /** The counts so far; `cells[i][key]` for numeric feature i. */
    public static final class Buffer implements Serializable {
        long[][] cells;
        long[] catNulls;
        List<HashMap<String, long[]>> cats;
        long[] tail;
        HashMap<String, long[]> statuses;
    }

    /** Parallel arrays of (f, k, s, n): one entry per non-empty cell. */
    public static final class Out implements Serializable {
        private int[] f;
        private int[] k;
        private String[] s;
        private long[] n;

        public int[] getF() { return f; }
        public void setF(int[] v) { f = v; }
        public int[] getK() { return k; }
        public void setK(int[] v) { k = v; }
        public String[] getS() { return s; }
        public void setS(String[] v) { s = v; }
        public long[] getN() { return n; }
        public void setN(long[] v) { n = v; }
    }

    @Override
    public Buffer zero() {
        Buffer b = new Buffer();
        b.cells = new long[cuts.length][];
        for (int i = 0; i < cuts.length; i++) {
            b.cells[i] = new long[2 * cuts[i].length + 2];
        }
        b.catNulls = new long[categorical];
        b.cats = new ArrayList<>(categorical);
        for (int j = 0; j < categorical; j++) {
            b.cats.add(new HashMap<>());
        }
        b.tail = new long[categorical];
        b.statuses = new HashMap<>();
        return b;
    }

    static int key(double[] c, double v) {
        if (Double.isNaN(v)) {
            return 0;
        }
        int at = Arrays.binarySearch(c, v + 0.0);
        return at >= 0 ? 2 * (at + 1) : 2 * (-at - 1) + 1;
    }

    @Override
    public Buffer reduce(Buffer b, In row) {
        double[] num = row.num;
        for (int i = 0; i < cuts.length; i++) {
            b.cells[i][key(cuts[i], num[i])]++;
        }
        String[] cat = row.cat;
        for (int j = 0; j < categorical; j++) {
            String v = cat[j];
            if (v == null) {
                b.catNulls[j]++;
            } else {
                count(b.cats.get(j), v, 1, b.tail, j);
            }
        }
        if (row.status != null) {
            for (Map.Entry<String, String> e : row.status.entrySet()) {
                if (e.getValue() != null) {
                    b.statuses.computeIfAbsent(e.getKey() + SEP + e.getValue(), x -> new long[1])[0]++;
                }
            }
        }
        return b;
    }

    private static void count(HashMap<String, long[]> m, String v, long n, long[] tail, int j) {
        long[] slot = m.get(v);
        if (slot != null) {
            slot[0] += n;
        } else if (m.size() < MAX_DISTINCT) {
            m.put(v, new long[] {n});
        } else {
            tail[j] += n;
        }
    }

    @Override
    public Buffer merge(Buffer a, Buffer b) {
        for (int i = 0; i < cuts.length; i++) {
            long[] x = a.cells[i];
            long[] y = b.cells[i];
            for (int k = 0; k < x.length; k++) {
                x[k] += y[k];
            }
        }
        for (int j = 0; j < categorical; j++) {
            a.catNulls[j] += b.catNulls[j];
            a.tail[j] += b.tail[j];
            for (Map.Entry<String, long[]> e : b.cats.get(j).entrySet()) {
                count(a.cats.get(j), e.getKey(), e.getValue()[0], a.tail, j);
            }
        }
        for (Map.Entry<String, long[]> e : b.statuses.entrySet()) {
            a.statuses.computeIfAbsent(e.getKey(), x -> new long[1])[0] += e.getValue()[0];
        }
        return a;
    }

    @Override
    public Out finish(Buffer b) {
        List<Object[]> rows = new ArrayList<>();
        int nn = cuts.length;
        for (int i = 0; i < nn; i++) {
            for (int k = 0; k < b.cells[i].length; k++) {
                if (b.cells[i][k] > 0) {
                    rows.add(new Object[] {i, k, null, b.cells[i][k]});
                }
            }
        }
        for (int j = 0; j < categorical; j++) {
            if (b.catNulls[j] > 0) {
                rows.add(new Object[] {nn + j, 0, null, b.catNulls[j]});
            }
            List<Map.Entry<String, long[]>> ranked = new ArrayList<>(b.cats.get(j).entrySet());
            ranked.sort((x, y) -> x.getValue()[0] != y.getValue()[0]
                    ? Long.compare(y.getValue()[0], x.getValue()[0]) : x.getKey().compareTo(y.getKey()));
            long tail = b.tail[j];
            for (int r = 0; r < ranked.size(); r++) {
                Map.Entry<String, long[]> e = ranked.get(r);
                if (r < cap && !TAIL.equals(e.getKey())) {
                    rows.add(new Object[] {nn + j, 1, e.getKey(), e.getValue()[0]});
                } else {
                    tail += e.getValue()[0];
                }
            }
            if (tail > 0) {
                rows.add(new Object[] {nn + j, 1, TAIL, tail});
            }
        }
        for (Map.Entry<String, long[]> e : b.statuses.entrySet()) {
            rows.add(new Object[] {-1, -1, e.getKey(), e.getValue()[0]});
        }
        Out out = new Out();
        out.f = new int[rows.size()];
        out.k = new int[rows.size()];
        out.s = new String[rows.size()];
        out.n = new long[rows.size()];
        for (int r = 0; r < rows.size(); r++) {
            Object[] row = rows.get(r);
            out.f[r] = (Integer) row[0];
            out.k[r] = (Integer) row[1];
            out.s[r] = (String) row[2];
            out.n[r] = (Long) row[3];
        }
        return out;
    }

    @Override
    public Encoder<Buffer> bufferEncoder() {
        return Encoders.javaSerialization(Buffer.class);
    }

    @Override
    public Encoder<Out> outputEncoder() {
        return Encoders.bean(Out.class);
    }
}
