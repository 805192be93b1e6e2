package io.aforo.sdk;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The on-disk spool: an append-only file of JSON lines, one per change —
 * {@code {"add":<event>}} when an event enters the buffer, {@code {"ack":["<event_id>",…]}} when the
 * fate of events is final (accepted, duplicate or rejected). The pending events are the adds
 * without an ack, in order. Replayed (and compacted to just those adds) when a client opens it; a
 * torn last line (a crash mid-write) is skipped. Each line reaches the operating system before
 * {@code record()} returns, so a killed process loses nothing; {@code fsync} is left to the OS (a
 * power cut may lose the last page). One client at a time: the file is locked.
 *
 * <p>Not thread-safe: the client calls it under its buffer lock.
 */
final class Spool implements AutoCloseable {
    private static final long COMPACT_AFTER_BYTES = 64L << 20;

    private final Path path;
    private final FileChannel lockChannel;
    private final FileLock lock;
    private FileChannel channel;
    private OutputStream out;
    private long written;

    private Spool(Path path) throws IOException {
        this.path = path;
        Path lockPath = path.resolveSibling(path.getFileName() + ".lock");
        this.lockChannel = FileChannel.open(lockPath, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock acquired;
        try {
            acquired = lockChannel.tryLock();
        } catch (java.nio.channels.OverlappingFileLockException sameProcess) {
            acquired = null;
        }
        if (acquired == null) {
            lockChannel.close();
            throw new IOException("spool " + path + " is in use by another client");
        }
        this.lock = acquired;
    }

    /** Opens (creating if absent) the spool and returns it with the events still pending in it. */
    static Spool open(Path path, List<UsageEvent> pendingOut) throws IOException {
        Path parent = path.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        Spool spool = new Spool(path);
        try {
            pendingOut.addAll(spool.replay());
            spool.rewrite(pendingOut);
        } catch (IOException | RuntimeException e) {
            spool.close();
            throw e;
        }
        return spool;
    }

    private List<UsageEvent> replay() throws IOException {
        Map<String, String> pending = new LinkedHashMap<>();
        if (Files.exists(path)) {
            try (BufferedReader reader = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
                String line;
                while ((line = reader.readLine()) != null) {
                    if (line.isBlank()) continue;
                    Map<String, Object> entry;
                    try {
                        entry = Json.decodeObject(line);
                    } catch (IllegalArgumentException torn) {
                        continue; // a line cut short by a crash: its event never left the process's buffer
                    }
                    if (entry.get("add") instanceof Map<?, ?> event) {
                        String json = line.substring(line.indexOf(':') + 1, line.length() - 1);
                        pending.put((String) event.get("event_id"), json);
                    } else if (entry.get("ack") instanceof List<?> ids) {
                        for (Object id : ids) pending.remove((String) id);
                    }
                }
            }
        }
        List<UsageEvent> events = new ArrayList<>(pending.size());
        for (String json : pending.values()) events.add(UsageEvent.fromJson(json));
        return events;
    }

    /** Replaces the file with the adds of these events only (write a temporary file, then rename). */
    void rewrite(Collection<UsageEvent> pending) throws IOException {
        if (out != null) {
            out.flush();
            channel.close();
        }
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        try (FileChannel fc = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            OutputStream o = Channels.newOutputStream(fc);
            for (UsageEvent e : pending) o.write(addLine(e));
            o.flush();
            fc.force(true);
        }
        Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        channel = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        out = Channels.newOutputStream(channel);
        written = 0;
    }

    private static byte[] addLine(UsageEvent e) {
        return ("{\"add\":" + e.toJson() + "}\n").getBytes(StandardCharsets.UTF_8);
    }

    void add(UsageEvent e) throws IOException {
        byte[] line = addLine(e);
        out.write(line);
        written += line.length;
    }

    void ack(Collection<String> eventIds) throws IOException {
        if (eventIds.isEmpty()) return;
        byte[] line = ("{\"ack\":" + Json.encode(eventIds) + "}\n").getBytes(StandardCharsets.UTF_8);
        out.write(line);
        written += line.length;
    }

    boolean wantsCompaction() {
        return written > COMPACT_AFTER_BYTES;
    }

    @Override
    public void close() throws IOException {
        try {
            if (channel != null) {
                channel.force(true);
                channel.close();
            }
        } finally {
            lock.release();
            lockChannel.close();
        }
    }
}
