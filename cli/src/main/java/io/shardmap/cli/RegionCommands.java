package io.shardmap.cli;

import io.shardmap.proto.v1.RemoveRegionRequest;
import io.shardmap.proto.v1.RemoveRegionResponse;
import io.shardmap.proto.v1.SetRegionRequest;
import io.shardmap.proto.v1.SetRegionResponse;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "region", description = "Change the regions of a geographic keyspace.",
    synopsisSubcommandLabel = "COMMAND", subcommands = {RegionCommands.Set.class, RegionCommands.Remove.class})
final class RegionCommands {

  @Command(name = "set", description = "Route REGION to SHARD (adding the region if new).")
  static final class Set extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "REGION")
    String region;

    @Parameters(index = "2", paramLabel = "SHARD")
    String shard;

    @Option(names = "--default", description = "Also make it the default region (for unknown regions).")
    boolean makeDefault;

    @Override
    void execute(ShardmapCtl ctl) {
      SetRegionResponse r = ctl.admin().setRegion(SetRegionRequest.newBuilder().setKeyspace(keyspace)
          .setRegion(region).setShard(shard).setMakeDefault(makeDefault).build());
      if (printedJson(r)) {
        return;
      }
      line("routed region " + region + " of " + keyspace + " to " + shard + " (revision " + r.getRevision() + ")");
      Layouts.regions(ctl.out, r.getGeo());
    }
  }

  @Command(name = "remove", description = "Remove REGION (not the default one); its keys go to the default region.")
  static final class Remove extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "REGION")
    String region;

    @Override
    void execute(ShardmapCtl ctl) {
      RemoveRegionResponse r = ctl.admin().removeRegion(RemoveRegionRequest.newBuilder().setKeyspace(keyspace)
          .setRegion(region).build());
      if (printedJson(r)) {
        return;
      }
      line("removed region " + region + " from " + keyspace + " (revision " + r.getRevision() + ")");
      Layouts.regions(ctl.out, r.getGeo());
    }
  }
}
