package io.shardmap.client;

import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * A child JVM of {@link GlobalSequenceProcessesTest}: one client, {@code instances} GlobalSequence objects of
 * one sequence, {@code threads} threads on each, each thread taking {@code count} numbers.
 *
 * <p>Arguments: targets name blockSize instances threads count dir tag reportAt. Each thread records every number it
 * takes in its own memory-mapped file {@code dir/tag-i{instance}-t{thread}.bin} (8 bytes per number, in order;
 * 0 = not taken): a store to a shared mapping is in the page cache at once, so it survives the process being
 * killed with SIGKILL; at most the one number a thread holds between next() and the store is lost then.
 *
 * <p>stdout: {@code READY} once every GlobalSequence has its first block; {@code AT} when thread 0 of
 * instance 0 has taken {@code reportAt} numbers; {@code DONE} after every thread finished and every GlobalSequence was
 * closed; {@code FAIL message} on an error.
 */
public final class SequenceProcess {
  private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

  private SequenceProcess() {}

  public static void main(String[] args) throws Exception {
    List<String> targets = List.of(args[0].split(","));
    String name = args[1];
    int blockSize = Integer.parseInt(args[2]);
    int instances = Integer.parseInt(args[3]);
    int threads = Integer.parseInt(args[4]);
    int count = Integer.parseInt(args[5]);
    Path dir = Path.of(args[6]);
    String tag = args[7];
    int reportAt = Integer.parseInt(args[8]);
    try (ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(targets).keyspaces("users")
        .clientId(tag).backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build())) {
      List<GlobalSequence> seqs = new ArrayList<>();
      for (int i = 0; i < instances; i++) {
        seqs.add(client.sequence(name, blockSize));
      }
      OUT.println("READY");
      List<Thread> running = new ArrayList<>();
      List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
      for (int i = 0; i < instances; i++) {
        for (int t = 0; t < threads; t++) {
          GlobalSequence seq = seqs.get(i);
          boolean reporter = i == 0 && t == 0;
          Path file = dir.resolve(tag + "-i" + i + "-t" + t + ".bin");
          Thread th = new Thread(() -> {
            try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw");
                 FileChannel ch = f.getChannel()) {
              MappedByteBuffer out = ch.map(FileChannel.MapMode.READ_WRITE, 0, 8L * count);
              for (int n = 0; n < count; n++) {
                out.putLong(8 * n, seq.next());
                if (reporter && n == reportAt) {
                  OUT.println("AT");
                }
              }
            } catch (Throwable e) {
              errors.add(e);
            }
          }, tag + "-" + i + "-" + t);
          th.start();
          running.add(th);
        }
      }
      for (Thread th : running) {
        th.join();
      }
      for (GlobalSequence s : seqs) {
        s.close();
      }
      if (!errors.isEmpty()) {
        OUT.println("FAIL " + errors.get(0));
        errors.get(0).printStackTrace(OUT);
        System.exit(1);
      }
      OUT.println("DONE");
    }
    System.exit(0);
  }
}
