package io.shardmap.server.internal;

import io.shardmap.catalog.CatalogPaths;
import io.shardmap.store.KeyValue;
import io.shardmap.store.WatchEvent;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Worker ids held per id generator, for the {@code shardmap.ids.workers.held} gauge: kept from the
 * directory's own watch of the cluster prefix (the claims {@code {root}/ids/{gen}/workers/{w}} are under
 * it), so it costs no etcd round trip and every server shows the whole cluster's count, not only the
 * claims it made. Sets of keys rather than counters: a replayed or re-read event cannot count twice.
 */
final class WorkerCensus {
  private final String idsPrefix;
  private final ServerMetrics metrics;
  private final Map<String, Set<String>> held = new HashMap<>();

  WorkerCensus(CatalogPaths paths, ServerMetrics metrics) {
    this.idsPrefix = paths.rootPrefix() + "ids/";
    this.metrics = metrics;
  }

  /** Starts over from a full read of the prefix (at load and reload). */
  synchronized void reset(List<KeyValue> all) {
    for (Set<String> keys : held.values()) {
      keys.clear();
    }
    for (KeyValue kv : all) {
      String gen = generatorOfClaim(kv.key());
      if (gen != null) {
        held.computeIfAbsent(gen, g -> new HashSet<>()).add(kv.key());
      }
    }
    publish();
  }

  /** Applies one watched revision's events. */
  synchronized void apply(List<WatchEvent> events) {
    boolean changed = false;
    for (WatchEvent e : events) {
      String gen = generatorOfClaim(e.kv().key());
      if (gen == null) {
        continue;
      }
      Set<String> keys = held.computeIfAbsent(gen, g -> new HashSet<>());
      changed |= e.type() == WatchEvent.Type.PUT ? keys.add(e.kv().key()) : keys.remove(e.kv().key());
    }
    if (changed) {
      publish();
    }
  }

  private void publish() {
    for (Map.Entry<String, Set<String>> e : held.entrySet()) {
      metrics.workersHeld(e.getKey(), e.getValue().size());
    }
  }

  /** The generator of a claim key ({@code {root}/ids/{gen}/workers/{w}}), else null. */
  private String generatorOfClaim(String key) {
    if (!key.startsWith(idsPrefix)) {
      return null;
    }
    String rest = key.substring(idsPrefix.length());
    int slash = rest.indexOf('/');
    if (slash <= 0 || !rest.startsWith("workers/", slash + 1)) {
      return null;
    }
    return rest.substring(0, slash);
  }
}
