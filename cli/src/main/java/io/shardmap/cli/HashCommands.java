package io.shardmap.cli;

import io.shardmap.proto.v1.GetMapRequest;
import io.shardmap.proto.v1.GetMapResponse;
import io.shardmap.proto.v1.ReshardHashRequest;
import io.shardmap.proto.v1.ReshardHashResponse;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "hash", description = "Replace the bucket list of a hash keyspace.",
    synopsisSubcommandLabel = "COMMAND", subcommands = {HashCommands.Reshard.class})
final class HashCommands {

  @Command(name = "reshard",
      description = {"Replace the bucket list: bucket i goes to the i-th SHARD.",
        "Changing the bucket count re-hashes nearly every key (about 1 - 1/max(N, M) of them change bucket), "
            + "so it needs --yes. A consistent-hash keyspace adds shards cheaply."})
  static final class Reshard extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1..*", arity = "1..*", split = ",", paramLabel = "SHARD",
        description = "The owner of each bucket, in bucket order (comma or space separated).")
    List<String> buckets;

    @Option(names = "--yes", description = "Confirm a change of the bucket count (a full re-hash).")
    boolean yes;

    @Override
    void execute(ShardmapCtl ctl) {
      if (!yes) {
        GetMapResponse current = ctl.read().getMap(GetMapRequest.newBuilder()
            .setKeyspace(keyspace).setPageSize(1).build());
        int n = current.getHash().getBucketsCount();
        if (n != buckets.size()) {
          int max = Math.max(n, buckets.size());
          throw usage("this changes the bucket count of " + keyspace + " from " + n + " to " + buckets.size()
              + ": a full re-hash moving about " + Text.percent(1 - 1.0 / max)
              + " of the keys; pass --yes to do it");
        }
      }
      ReshardHashResponse r = ctl.admin().reshardHash(ReshardHashRequest.newBuilder().setKeyspace(keyspace)
          .addAllBuckets(buckets).build());
      if (printedJson(r)) {
        return;
      }
      line("resharded " + keyspace + " into " + r.getHash().getBucketsCount() + " buckets (revision "
          + r.getRevision() + ")");
      moved(r.getMovedFraction());
      Layouts.buckets(ctl.out, r.getHash());
    }
  }
}
