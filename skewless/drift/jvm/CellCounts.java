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
 * - every entry carries n, its row count, and w, the sum of its rows' weights; feature i's entry
 *   k = -2 has n = its non-missing rows and w = the sum of their squared weights (Kish's effective
 *   size). Unweighted (`weighted` false): the weight input is ignored and w = n, exactly.
 */
public final class CellCounts extends Aggregator<CellCounts.In, CellCounts.Buffer, CellCounts.Out> {
    static final String TAIL = "__tail__";
    static final String SEP = "\u0000";
    static final int MAX_DISTINCT = 100_000;

    private final double[][] cuts;
    private final int categorical;
    private final int cap;
    private final boolean weighted;

    CellCounts(double[][] cuts, int categorical, int cap, boolean weighted) {
        this.cuts = cuts;
        this.categorical = categorical;
        this.cap = cap;
        this.weighted = weighted;
    }

    /**
     * Registers the aggregate for these cuts under `name` (a temporary function of this session) and
     * returns its argument order: the input bean's field names, which the caller passes in that order.
     */
    public static String[] register(SparkSession spark, String name, String cutsJson, int categorical, int cap,
                                    boolean weighted) throws java.io.IOException {
        // Python's json writes +-Infinity as such (a dataset version may hold them; feature_logs cannot).
        ObjectMapper json = new ObjectMapper().enable(JsonParser.Feature.ALLOW_NON_NUMERIC_NUMBERS);
        double[][] cuts = json.readValue(cutsJson, double[][].class);
        for (double[] c : cuts) {
            for (int i = 0; i < c.length; i++) {
                c[i] = c[i] + 0.0;  // -0.0 becomes 0.0: equal values, one cell (Spark's `=` agrees)
            }
        }
        Encoder<In> input = Encoders.bean(In.class);
        spark.udf().register(name, functions.udaf(new CellCounts(cuts, categorical, cap, weighted), input));
        return input.schema().fieldNames();
    }

    /** One row: numeric values (NaN: missing), categorical values (null: missing), feature statuses, weight. */
    public static final class In implements Serializable {
        private double[] num;
        private String[] cat;
        private Map<String, String> status;
        private double w;

        public double[] getNum() { return num; }
        public void setNum(double[] v) { num = v; }
        public String[] getCat() { return cat; }
        public void setCat(String[] v) { cat = v; }
        public Map<String, String> getStatus() { return status; }
        public void setStatus(Map<String, String> v) { status = v; }
        public double getW() { return w; }
        public void setW(double v) { w = v; }
    }

    /**
     * The counts so far: `cells[i][key]` for numeric feature i, and when weighted the weight sums in
     * `cellW`, `catNullW`, `tailW`, the second slot of each map value ({count, weight}), and `sq[f]`,
     * the squared weights of feature f's non-missing rows.
     */
    public static final class Buffer implements Serializable {
        long[][] cells;
        long[] catNulls;
        List<HashMap<String, double[]>> cats;
        long[] tail;
        HashMap<String, double[]> statuses;
        double[][] cellW;
        double[] catNullW;
        double[] tailW;
        double[] sq;
    }

    /** Parallel arrays of (f, k, s, n): one entry per non-empty cell. */
    public static final class Out implements Serializable {
        private int[] f;
        private int[] k;
        private String[] s;
        private long[] n;
        private double[] w;

        public int[] getF() { return f; }
        public void setF(int[] v) { f = v; }
        public int[] getK() { return k; }
        public void setK(int[] v) { k = v; }
        public String[] getS() { return s; }
        public void setS(String[] v) { s = v; }
        public long[] getN() { return n; }
        public void setN(long[] v) { n = v; }
        public double[] getW() { return w; }
        public void setW(double[] v) { w = v; }
    }

    @Override
    public Buffer zero() {
        int nn = cuts.length;
        Buffer b = new Buffer();
        b.cells = new long[nn][];
        b.cellW = new double[weighted ? nn : 0][];
        for (int i = 0; i < nn; i++) {
            b.cells[i] = new long[2 * cuts[i].length + 2];
            if (weighted) {
                b.cellW[i] = new double[2 * cuts[i].length + 2];
            }
        }
        b.catNulls = new long[categorical];
        b.catNullW = new double[categorical];
        b.cats = new ArrayList<>(categorical);
        for (int j = 0; j < categorical; j++) {
            b.cats.add(new HashMap<>());
        }
        b.tail = new long[categorical];
        b.tailW = new double[categorical];
        b.statuses = new HashMap<>();
        b.sq = new double[nn + categorical];
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
        // Unweighted, every weight is 1: the hot loop only counts (w = n is filled in by finish).
        double w = weighted ? row.w : 1.0;
        if (!(w >= 0.0 && w < Double.POSITIVE_INFINITY)) {
            // A weight is a row's share of the population: refused, never coerced (null arrives as NaN).
            throw new IllegalArgumentException("drift: a row's weight must be finite and >= 0, got " + w);
        }
        int nn = cuts.length;
        for (int i = 0; i < nn; i++) {
            int k = key(cuts[i], num[i]);
            b.cells[i][k]++;
            if (weighted) {
                b.cellW[i][k] += w;
                if (k != 0) {
                    b.sq[i] += w * w;
                }
            }
        }
        String[] cat = row.cat;
        for (int j = 0; j < categorical; j++) {
            String v = cat[j];
            if (v == null) {
                b.catNulls[j]++;
                b.catNullW[j] += w;
            } else {
                count(b, j, v, 1, w);
                b.sq[nn + j] += w * w;
            }
        }
        if (row.status != null) {
            for (Map.Entry<String, String> e : row.status.entrySet()) {
                if (e.getValue() != null) {
                    double[] slot = b.statuses.computeIfAbsent(e.getKey() + SEP + e.getValue(), x -> new double[2]);
                    slot[0]++;
                    slot[1] += w;
                }
            }
        }
        return b;
    }

    private static void count(Buffer b, int j, String v, double n, double w) {
        HashMap<String, double[]> m = b.cats.get(j);
        double[] slot = m.get(v);
        if (slot != null) {
            slot[0] += n;
            slot[1] += w;
        } else if (m.size() < MAX_DISTINCT) {
            m.put(v, new double[] {n, w});
        } else {
            b.tail[j] += (long) n;
            b.tailW[j] += w;
        }
    }

    @Override
    public Buffer merge(Buffer a, Buffer b) {
        for (int i = 0; i < cuts.length; i++) {
            add(a.cells[i], b.cells[i]);
            if (weighted) {
                add(a.cellW[i], b.cellW[i]);
            }
        }
        add(a.sq, b.sq);
        for (int j = 0; j < categorical; j++) {
            a.catNulls[j] += b.catNulls[j];
            a.catNullW[j] += b.catNullW[j];
            a.tail[j] += b.tail[j];
            a.tailW[j] += b.tailW[j];
            for (Map.Entry<String, double[]> e : b.cats.get(j).entrySet()) {
                count(a, j, e.getKey(), e.getValue()[0], e.getValue()[1]);
            }
        }
        for (Map.Entry<String, double[]> e : b.statuses.entrySet()) {
            double[] slot = a.statuses.computeIfAbsent(e.getKey(), x -> new double[2]);
            slot[0] += e.getValue()[0];
            slot[1] += e.getValue()[1];
        }
        return a;
    }

    private static void add(long[] x, long[] y) {
        for (int k = 0; k < x.length; k++) {
            x[k] += y[k];
        }
    }

    private static void add(double[] x, double[] y) {
        for (int k = 0; k < x.length; k++) {
            x[k] += y[k];
        }
    }

    @Override
    public Out finish(Buffer b) {
        List<Object[]> rows = new ArrayList<>();
        int nn = cuts.length;
        for (int i = 0; i < nn; i++) {
            long[] c = b.cells[i];
            for (int k = 0; k < c.length; k++) {
                if (c[k] > 0) {
                    rows.add(new Object[] {i, k, null, c[k], weighted ? b.cellW[i][k] : (double) c[k]});
                }
            }
            long present = Arrays.stream(c).sum() - c[0];
            rows.add(new Object[] {i, -2, null, present, weighted ? b.sq[i] : (double) present});
        }
        for (int j = 0; j < categorical; j++) {
            finishCategorical(b, j, rows);
        }
        for (Map.Entry<String, double[]> e : b.statuses.entrySet()) {
            rows.add(new Object[] {-1, -1, e.getKey(), (long) e.getValue()[0], e.getValue()[1]});
        }
        Out out = new Out();
        int size = rows.size();
        out.f = new int[size];
        out.k = new int[size];
        out.s = new String[size];
        out.n = new long[size];
        out.w = new double[size];
        for (int r = 0; r < size; r++) {
            Object[] row = rows.get(r);
            out.f[r] = (Integer) row[0];
            out.k[r] = (Integer) row[1];
            out.s[r] = (String) row[2];
            out.n[r] = (Long) row[3];
            out.w[r] = (Double) row[4];
        }
        return out;
    }

    /** A categorical feature's entries: nulls, the `cap` largest values (ties by value), the rest as TAIL. */
    private void finishCategorical(Buffer b, int j, List<Object[]> rows) {
        int f = cuts.length + j;
        if (b.catNulls[j] > 0) {
            rows.add(new Object[] {f, 0, null, b.catNulls[j], weighted ? b.catNullW[j] : (double) b.catNulls[j]});
        }
        List<Map.Entry<String, double[]>> ranked = new ArrayList<>(b.cats.get(j).entrySet());
        ranked.sort((x, y) -> x.getValue()[0] != y.getValue()[0]
                ? Double.compare(y.getValue()[0], x.getValue()[0]) : x.getKey().compareTo(y.getKey()));
        long tail = b.tail[j];
        double tailW = b.tailW[j];
        long present = tail;
        for (int r = 0; r < ranked.size(); r++) {
            Map.Entry<String, double[]> e = ranked.get(r);
            long n = (long) e.getValue()[0];
            present += n;
            if (r < cap && !TAIL.equals(e.getKey())) {
                rows.add(new Object[] {f, 1, e.getKey(), n, weighted ? e.getValue()[1] : (double) n});
            } else {
                tail += n;
                tailW += e.getValue()[1];
            }
        }
        if (tail > 0) {
            rows.add(new Object[] {f, 1, TAIL, tail, weighted ? tailW : (double) tail});
        }
        rows.add(new Object[] {f, -2, null, present, weighted ? b.sq[f] : (double) present});
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
