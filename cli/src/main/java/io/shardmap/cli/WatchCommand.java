package io.shardmap.cli;

import io.grpc.Status;
import io.shardmap.proto.v1.BucketAssignment;
import io.shardmap.proto.v1.DirectoryLayout;
import io.shardmap.proto.v1.ListKeyspacesRequest;
import io.shardmap.proto.v1.MapChange;
import io.shardmap.proto.v1.RegionAssignment;
import io.shardmap.proto.v1.RingShard;
import io.shardmap.proto.v1.Shard;
import io.shardmap.proto.v1.WatchRequest;
import io.shardmap.proto.v1.WatchResponse;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "watch",
    description = {"Print every map change as it happens, until Ctrl-C or --count changes.",
      "Text: one line per change: revision, keyspace ('-' for shard changes), what changed. JSON: one "
          + "compact WatchResponse per line; progress heartbeats are not printed.",
      "If the server no longer has the changes after --after, exits with 4: re-read the map with "
          + "'keyspace get' and watch again from its revision."})
final class WatchCommand extends Cmd {
  @Parameters(arity = "0..*", paramLabel = "KEYSPACE",
      description = "Keyspaces to follow (default: all). Shard changes are always shown.")
  List<String> keyspaces = new ArrayList<>();

  @Option(names = "--after", paramLabel = "REV",
      description = "Start with the changes after this revision (default: the server's current one, i.e. only "
          + "new changes).")
  Long after;

  @Option(names = "--count", paramLabel = "N", description = "Exit after printing N changes.")
  Integer count;

  /** The server cannot replay the requested history: the caller must re-read the map. */
  static final class ResyncRequired extends RuntimeException {
    private static final long serialVersionUID = 1L;

    ResyncRequired(String message) {
      super(message);
    }
  }

  @Override
  void execute(ShardmapCtl ctl) {
    if (count != null && count <= 0) {
      throw usage("--count must be positive, got " + count);
    }
    if (after != null && after < 0) {
      throw usage("--after must be a revision >= 0, got " + after);
    }
    long from = after != null ? after
        : ctl.read().listKeyspaces(ListKeyspacesRequest.getDefaultInstance()).getRevision();
    WatchRequest req = WatchRequest.newBuilder().addAllKeyspaces(keyspaces).setAfterRevision(from).build();
    // Returning early (--count) leaves the stream open; ShardmapCtl.run shuts the channel down right after,
    // which cancels it on the server too.
    stream(ctl, ctl.streaming().watch(req), from);
  }

  private void stream(ShardmapCtl ctl, Iterator<WatchResponse> responses, long from) {
    int printed = 0;
    while (responses.hasNext()) {
      WatchResponse r = responses.next();
      if (r.getResyncRequired()) {
        throw new ResyncRequired("resync required: the server no longer has the changes after revision " + from
            + "; re-read the map (shardmapctl keyspace get) and watch again from its revision");
      }
      if (r.getProgress() || r.getChangesCount() == 0) {
        continue;
      }
      List<MapChange> changes = r.getChangesList();
      if (count != null && changes.size() > count - printed) {
        changes = changes.subList(0, count - printed);
      }
      if (ctl.json()) {
        WatchResponse shown = changes.size() == r.getChangesCount() ? r
            : r.toBuilder().clearChanges().addAllChanges(changes).build();
        ctl.out.println(json(shown, true));
      } else {
        for (MapChange c : changes) {
          ctl.out.println(r.getRevision() + "  " + (c.getKeyspace().isEmpty() ? "-" : c.getKeyspace()) + "  "
              + describe(c));
        }
      }
      ctl.out.flush();
      printed += changes.size();
      if (count != null && printed >= count) {
        return;
      }
    }
    throw Status.UNAVAILABLE.withDescription("the server ended the watch stream").asRuntimeException();
  }

  /** One change in words, keys and ranges in the syntax the other commands accept. */
  static String describe(MapChange c) {
    return switch (c.getChangeCase()) {
      case SPEC -> "keyspace " + Text.summary(c.getSpec()) + ", tables " + Text.tables(c.getSpec().getTablesList());
      case KEYSPACE_DROPPED -> "keyspace dropped";
      case SHARD -> {
        Shard s = c.getShard();
        yield "shard " + s.getName() + " = " + (s.hasPrimary() ? Text.endpoint(s.getPrimary()) : "-") + ", "
            + Text.state(s.getState())
            + (s.getRegion().isEmpty() ? "" : ", region " + s.getRegion())
            + (s.getReplicasCount() == 0 ? "" : ", replicas " + s.getReplicasList().stream().map(Text::endpoint)
                .collect(Collectors.joining(",")))
            + (s.hasPatroni() ? ", patroni " + Text.patroni(s.getPatroni()) + " term " + s.getPrimaryTerm() : "");
      }
      case SHARD_REMOVED -> "shard " + c.getShardRemoved() + " deregistered";
      case RANGE -> "range " + Text.range(c.getRange().getRange()) + " -> " + c.getRange().getShard() + " (epoch "
          + c.getRange().getEpoch() + ")";
      case RANGE_REMOVED_START -> "range starting at " + Text.key(c.getRangeRemovedStart()) + " removed";
      case HASH -> {
        List<String> b = new ArrayList<>();
        for (int i = 0; i < c.getHash().getBucketsCount(); i++) {
          BucketAssignment a = c.getHash().getBuckets(i);
          b.add(i + "=" + a.getShard());
        }
        yield "buckets " + String.join(" ", b);
      }
      case RING -> "ring " + c.getRing().getShardsList().stream()
          .map((RingShard s) -> s.getShard() + " x" + s.getVnodeEpochsCount()).collect(Collectors.joining(", "));
      case DIRECTORY -> {
        DirectoryLayout d = c.getDirectory();
        yield d.getFallbackShard().isEmpty() ? "fallback removed"
            : "fallback -> " + d.getFallbackShard() + " (epoch " + d.getFallbackEpoch() + ")";
      }
      case ENTRY -> "entry " + Text.key(c.getEntry().getKey()) + " -> " + c.getEntry().getShard() + " (epoch "
          + c.getEntry().getEpoch() + ")";
      case ENTRY_REMOVED -> "entry " + Text.key(c.getEntryRemoved()) + " removed";
      case GEO -> "regions " + c.getGeo().getRegionsList().stream()
          .map((RegionAssignment a) -> a.getRegion() + "=" + a.getShard()).collect(Collectors.joining(" "))
          + ", default " + Text.orDash(c.getGeo().getDefaultRegion());
      default -> "(a " + c.getChangeCase() + " change; --output json shows it)";
    };
  }
}
