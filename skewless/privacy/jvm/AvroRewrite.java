package io.skewless.privacy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import org.apache.avro.Schema;
import org.apache.avro.file.CodecFactory;
import org.apache.avro.file.DataFileStream;
import org.apache.avro.file.DataFileWriter;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * `forget --rewrite-landing` for format-v2 files: copies an Avro object container file without the
 * records of one subject. A record is the subject's when its request id is one of the subject's, or
 * when any string in it (a value or a map key, at any depth) equals the subject's raw value: the same
 * rule as for a v1 line holding the value as a JSON string.
 *
 * The copy keeps the writer schema, every metadata entry of the original (the format's
 * `skewless.schema_version` among them), its codec and a sync marker derived from the file name as
 * the serving logger does. A file cut short or with a corrupt block keeps the records before the
 * damage, as compaction reads them. Nothing is written when no record is the subject's.
 */
public final class AvroRewrite {
    private AvroRewrite() {}

    /** Writes `src` without the subject's records to `tmp`; returns the records removed (0: no `tmp`). */
    public static long rewrite(String src, String tmp, Configuration conf, Collection<String> requestIds, String raw)
            throws IOException {
        Set<String> ids = new HashSet<>(requestIds);
        Path path = new Path(src);
        FileSystem fs = path.getFileSystem(conf);
        long hits = 0;
        try (InputStream in = fs.open(path);
             DataFileStream<GenericRecord> records = new DataFileStream<>(in, new GenericDatumReader<>())) {
            GenericRecord r;
            while ((r = next(records)) != null) {
                if (isSubject(r, ids, raw)) {
                    hits++;
                }
            }
        }
        if (hits == 0) {
            return 0;
        }
        try (InputStream in = fs.open(path);
             DataFileStream<GenericRecord> records = new DataFileStream<>(in, new GenericDatumReader<>());
             OutputStream sink = fs.create(new Path(tmp), true);
             DataFileWriter<GenericRecord> out = new DataFileWriter<>(new GenericDatumWriter<>(records.getSchema()))) {
            for (String key : records.getMetaKeys()) {
                if (!key.startsWith("avro.")) {
                    out.setMeta(key, records.getMeta(key));
                }
            }
            String codec = records.getMetaString("avro.codec");
            out.setCodec(codec == null ? CodecFactory.nullCodec() : CodecFactory.fromString(codec));
            out.create(records.getSchema(), sink, marker(path.getName()));
            GenericRecord r;
            while ((r = next(records)) != null) {
                if (!isSubject(r, ids, raw)) {
                    out.append(r);
                }
            }
        }
        return hits;
    }

    /** The next record; null at the end and at the first block that cannot be read (a cut or corrupt file). */
    private static GenericRecord next(DataFileStream<GenericRecord> records) {
        try {
            return records.hasNext() ? records.next() : null;
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static byte[] marker(String name) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(name.getBytes(StandardCharsets.UTF_8));
            return Arrays.copyOf(digest, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static boolean isSubject(GenericRecord r, Set<String> ids, String raw) {
        Object id = r.getSchema().getField("request_id") == null ? null : r.get("request_id");
        return (id != null && ids.contains(id.toString())) || holds(r, raw);
    }

    private static boolean holds(Object value, String raw) {
        if (value == null) {
            return false;
        }
        if (value instanceof CharSequence) {
            return raw.contentEquals((CharSequence) value);
        }
        if (value instanceof GenericRecord) {
            GenericRecord rec = (GenericRecord) value;
            for (Schema.Field f : rec.getSchema().getFields()) {
                if (holds(rec.get(f.pos()), raw)) {
                    return true;
                }
            }
            return false;
        }
        if (value instanceof Map) {
            for (Map.Entry<?, ?> e : ((Map<?, ?>) value).entrySet()) {
                if (holds(e.getKey(), raw) || holds(e.getValue(), raw)) {
                    return true;
                }
            }
            return false;
        }
        if (value instanceof Collection) {
            for (Object item : (Collection<?>) value) {
                if (holds(item, raw)) {
                    return true;
                }
            }
        }
        return false;
    }
}
