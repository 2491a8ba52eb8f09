package io.skewless.ingest;

import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Counts the records of an Avro object container file from its block headers alone, without
 * decoding or decompressing a record: the count compaction compares with what Spark read, so a
 * cut or corrupt file is never silently short.
 *
 * The container format: magic "Obj\1", a metadata map (bytes values), a 16-byte sync marker, then
 * blocks of (record count: long, byte size: long, data, the sync marker). Each block's data is
 * skipped with a seek; its sync marker is read and compared. The walk stops at the first block that
 * is cut short or whose marker differs, and says so: the records counted up to there are the ones
 * a reader can trust.
 */
public final class AvroBlocks {
    private AvroBlocks() {}

    /** The outcome of one walk: the header's metadata, the records and blocks found, and an error or null. */
    public static final class Walk {
        public final Map<String, String> metadata = new LinkedHashMap<>();
        public long records;
        public long blocks;
        public String error;

        public String getError() { return error; }
        public long getRecords() { return records; }
        public long getBlocks() { return blocks; }
        public Map<String, String> getMetadata() { return metadata; }
    }

    public static Walk walk(String uri, Configuration conf) throws IOException {
        Path path = new Path(uri);
        FileSystem fs = path.getFileSystem(conf);
        long length = fs.getFileStatus(path).getLen();
        Walk walk = new Walk();
        try (FSDataInputStream in = fs.open(path)) {
            byte[] magic = new byte[4];
            in.readFully(magic);
            if (magic[0] != 'O' || magic[1] != 'b' || magic[2] != 'j' || magic[3] != 1) {
                walk.error = "not an Avro object container file (no Obj\\1 magic)";
                return walk;
            }
            readMetadata(in, walk.metadata);
            byte[] sync = new byte[16];
            in.readFully(sync);
            byte[] seen = new byte[16];
            while (in.getPos() < length) {
                long at = in.getPos();
                long count = readLong(in);
                long size = readLong(in);
                if (count < 0 || size < 0 || in.getPos() + size + 16 > length) {
                    walk.error = "block " + (walk.blocks + 1) + " at byte " + at + " is cut short or its header is corrupt";
                    return walk;
                }
                in.seek(in.getPos() + size);
                in.readFully(seen);
                if (!Arrays.equals(sync, seen)) {
                    walk.error = "block " + (walk.blocks + 1) + " at byte " + at + " does not end with the file's sync marker";
                    return walk;
                }
                walk.records += count;
                walk.blocks += 1;
            }
        } catch (EOFException e) {
            walk.error = "cut short after " + walk.blocks + " blocks (" + walk.records + " records)";
        }
        return walk;
    }

    private static void readMetadata(FSDataInputStream in, Map<String, String> out) throws IOException {
        while (true) {
            long entries = readLong(in);
            if (entries == 0) {
                return;
            }
            if (entries < 0) {  // a negative count is followed by the block's size in bytes
                entries = -entries;
                readLong(in);
            }
            for (long i = 0; i < entries; i++) {
                String key = new String(readBytes(in), StandardCharsets.UTF_8);
                byte[] value = readBytes(in);
                out.put(key, key.equals("avro.schema") || key.startsWith("skewless.") || key.equals("avro.codec")
                        ? new String(value, StandardCharsets.UTF_8) : "");
            }
        }
    }

    private static byte[] readBytes(FSDataInputStream in) throws IOException {
        long n = readLong(in);
        if (n < 0 || n > (64L << 20)) {
            throw new EOFException("metadata value of " + n + " bytes");
        }
        byte[] b = new byte[(int) n];
        in.readFully(b);
        return b;
    }

    /** Avro's long: zig-zag encoded, 7 bits per byte, least significant group first. */
    private static long readLong(FSDataInputStream in) throws IOException {
        long raw = 0;
        for (int shift = 0; shift < 70; shift += 7) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException();
            }
            raw |= (long) (b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return (raw >>> 1) ^ -(raw & 1);
            }
        }
        throw new EOFException("a varint longer than 10 bytes");
    }
}
