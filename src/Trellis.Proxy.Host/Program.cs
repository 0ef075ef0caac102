return await Trellis.Proxy.ProxyMain.RunAsync(args).ConfigureAwait(false);
