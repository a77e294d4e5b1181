package io.shardmap.client.internal.load;

import com.google.protobuf.ByteString;
import io.shardmap.core.RoutingTable;
import io.shardmap.proto.v1.KeyspaceLoad;
import io.shardmap.proto.v1.LoadBand;
import io.shardmap.proto.v1.LoadSample;
import java.util.ArrayList;
import java.util.List;

/**
 * What one {@link UnitCounters} counted over [startMs, endMs) of the wall clock: per-slot sums, and the keys
 * sampled. Windows of the same counters not yet accepted by a server are merged (they are adjacent in time),
 * as long as the merged window stays within {@link LoadMeter#MAX_WINDOW_MS}.
 */
final class Window {
  /** At most this many bands per KeyspaceLoad (the server's limit): more slots are grouped. */
  static final int MAX_BANDS = 4096;

  final UnitCounters counters;
  final long startMs;
  long endMs;
  final long[] sums;
  final List<LoadSample> samples;
  /** Calls sampled (before the reservoir's bound): the samples kept are uniform over these. */
  long sampled;
  /** Bands in the last {@link #toProto}, for the metrics once a server accepts it. */
  int lastBands;
  /** Sent in the report under way: nothing is merged into it until that report's answer. */
  boolean inFlight;

  Window(UnitCounters counters, long startMs, long endMs, long[] sums, List<LoadSample> samples, long sampled) {
    this.counters = counters;
    this.startMs = startMs;
    this.endMs = endMs;
    this.sums = sums;
    this.samples = new ArrayList<>(samples);
    this.sampled = sampled;
  }

  /** Adds a later window of the same counters to this one. */
  void merge(Window later) {
    for (int i = 0; i < sums.length; i++) {
      sums[i] += later.sums[i];
    }
    endMs = Math.max(endMs, later.endMs);
    for (LoadSample s : later.samples) {
      if (samples.size() >= UnitCounters.SAMPLE_CAPACITY) {
        break;
      }
      samples.add(s);
    }
    sampled += later.sampled;
  }

  /** Reads plus writes: the calls in this window (errors are among them). */
  long calls() {
    long n = 0;
    for (int i = 0; i < sums.length; i += UnitCounters.FIELDS) {
      n += sums[i + UnitCounters.READS] + sums[i + UnitCounters.WRITES];
    }
    return n;
  }

  /**
   * The window as sent: one band per run of slots with counts (slots grouped to stay within
   * {@link #MAX_BANDS}), at the positions of the table it was counted against.
   */
  KeyspaceLoad toProto(int sampleEvery) {
    UnitCounters c = counters;
    RoutingTable t = c.table;
    KeyspaceLoad.Builder b = KeyspaceLoad.newBuilder().setKeyspace(c.keyspace).setLayoutRevision(c.layoutRevision)
        .setStartUnixMs(startMs).setEndUnixMs(endMs);
    int group = (c.slots + MAX_BANDS - 1) / MAX_BANDS;
    int bands = 0;
    for (int g = 0; g < c.slots; g += group) {
      long reads = 0;
      long writes = 0;
      long busy = 0;
      long errors = 0;
      int last = Math.min(g + group, c.slots);
      for (int s = g; s < last; s++) {
        int i = s * UnitCounters.FIELDS;
        reads += sums[i + UnitCounters.READS];
        writes += sums[i + UnitCounters.WRITES];
        busy += sums[i + UnitCounters.BUSY];
        errors += sums[i + UnitCounters.ERRORS];
      }
      if (reads == 0 && writes == 0 && busy == 0 && errors == 0) {
        continue;
      }
      int first = c.firstUnit(g);
      int end = c.firstUnit(last);
      if (end <= first) {
        continue; // slots holding no unit are never counted on
      }
      b.addBands(LoadBand.newBuilder().setStart(ByteString.copyFrom(t.unitStart(first)))
          .setEnd(ByteString.copyFrom(t.unitEnd(end - 1))).setUnits(end - first).setReads(reads)
          .setWrites(writes).setBusyMicros(busy / 1000).setErrors(errors));
      bands++;
    }
    lastBands = bands;
    if (!samples.isEmpty()) {
      // The reservoir kept samples.size() of `sampled` sampled calls: each call was kept with probability
      // samples.size() / (sampled * sampleEvery).
      long every = sampled <= samples.size() ? sampleEvery
          : Math.max(sampleEvery, Math.round((double) sampleEvery * sampled / samples.size()));
      b.addAllSamples(samples).setSampleEvery(every);
    }
    return b.build();
  }
}
