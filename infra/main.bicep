// The VM Image Pipeline in one subscription: `azd up` provisions this, then deploys the app (azure.yaml).
// The app's resources go into one resource group; the roles it needs elsewhere are custom roles built from
// app-actions.json and assigned at the scopes the parameters name (README, "Deploying to Azure").
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Region of the resource group and of every resource in it (Flex Consumption must be offered there).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Resource group of the app. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Comma-separated resource groups (in this subscription) of the VMs to capture: their snapshots are made there and deallocations there start captures. Empty: the app\'s own group.')
param sourceResourceGroups string = ''

@description('Resource group where the pipeline builds intermediate resources. Empty: the first source group.')
param buildResourceGroup string = ''

@description('Comma-separated resource groups (in this subscription) of the Compute Galleries the app publishes to. Empty: the app\'s own group.')
param galleryResourceGroups string = ''

@description('Comma-separated resource ids of the storage accounts VHD exports may go to (this subscription). Empty: VHD export disabled.')
param exportStorageAccounts string = ''

@description('Comma-separated resource ids of the storage accounts (this subscription) whose VHD blobs captures may import as a VHD source (source.vhds). Empty: none.')
param vhdSourceStorageAccounts string = ''

@description('Create the Event Grid subscriptions that call capture_on_deallocation. Event Grid validates the webhook when the subscription is created, so the app must already be deployed: the postdeploy hook of azure.yaml sets this and provisions again.')
param eventSubscriptionEnabled bool = false

@description('Integrate the Function App with a new virtual network and reach host storage through private endpoints only.')
param vnetEnabled bool = false

@description('Storage queue the queue trigger reads capture requests from.')
param captureRequestsQueue string = 'capture-requests'

@description('Storage queue completion notices are written to.')
param captureResultsQueue string = 'capture-results'

@description('Flex Consumption: the most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory of one instance (MB).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Object id of a user who may read the host storage (queues, task hub) for debugging. Empty: nobody.')
param principalId string = ''

var appActions = loadJsonContent('../shared/app-actions.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var appGroupName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var sourceGroups = empty(sourceResourceGroups) ? [appGroupName] : split(replace(sourceResourceGroups, ' ', ''), ',')
var buildGroup = empty(buildResourceGroup) ? sourceGroups[0] : buildResourceGroup
var galleryGroups = empty(galleryResourceGroups) ? [appGroupName] : split(replace(galleryResourceGroups, ' ', ''), ',')
var exportAccounts = empty(exportStorageAccounts) ? [] : split(replace(exportStorageAccounts, ' ', ''), ',')
var vhdSourceAccounts = empty(vhdSourceStorageAccounts) ? [] : split(replace(vhdSourceStorageAccounts, ' ', ''), ',')
// The webhook the Event Grid subscriptions call: triggers/eventgrid_captures.py (name and route).
var deallocationFunctionName = 'capture_on_deallocation'
var deallocationRoute = 'eventgrid/deallocations'
// Role names are unique per tenant: the environment and subscription keep two deployments apart.
var roleNameSuffix = ' (${environmentName}, ${subscription().subscriptionId})'
// JANITOR_SCOPES: the groups the app holds roles in (the janitor lists snapshots and image versions there).
var janitorGroups = union(sourceGroups, [buildGroup], galleryGroups)
var groupIdPrefix = '${subscription().id}/resourceGroups/'
var janitorScopes = concat(groupIdPrefix, join(janitorGroups, concat(',', groupIdPrefix)))

resource appGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appGroupName
  location: location
  tags: tags
}

module core 'app/core.bicep' = {
  name: 'core'
  scope: appGroup
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    vnetEnabled: vnetEnabled
    captureRequestsQueue: captureRequestsQueue
    captureResultsQueue: captureResultsQueue
    exportAccounts: exportStorageAccounts
    janitorScopes: janitorScopes
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    principalId: principalId
  }
}

// One custom role per entry of app-actions.json, assignable in this subscription.
resource appRoles 'Microsoft.Authorization/roleDefinitions@2022-04-01' = [for role in appActions.roles: {
  name: guid(subscription().id, environmentName, role.name)
  properties: {
    roleName: '${role.name}${roleNameSuffix}'
    description: role.description
    type: 'CustomRole'
    assignableScopes: [subscription().id]
    permissions: [
      {
        actions: role.actions
        notActions: []
        dataActions: role.dataActions
        notDataActions: []
      }
    ]
  }
}]

module sourceRoles 'app/group-roles.bicep' = [for group in sourceGroups: {
  name: 'roles-source-${uniqueString(group)}'
  scope: resourceGroup(group)
  params: {
    roles: appActions.roles
    scopeKind: 'sourceGroups'
    roleKey: environmentName
    principalId: core.outputs.identityPrincipalId
  }
  dependsOn: [appRoles]
}]

module buildRoles 'app/group-roles.bicep' = {
  name: 'roles-build-${uniqueString(buildGroup)}'
  scope: resourceGroup(buildGroup)
  params: {
    roles: appActions.roles
    scopeKind: 'buildGroup'
    roleKey: environmentName
    principalId: core.outputs.identityPrincipalId
  }
  dependsOn: [appRoles]
}

module galleryRoles 'app/group-roles.bicep' = [for group in galleryGroups: {
  name: 'roles-gallery-${uniqueString(group)}'
  scope: resourceGroup(group)
  params: {
    roles: appActions.roles
    scopeKind: 'galleries'
    roleKey: environmentName
    principalId: core.outputs.identityPrincipalId
  }
  dependsOn: [appRoles]
}]

// An export account id: /subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/<name>
module exportRoles 'app/account-roles.bicep' = [for account in exportAccounts: {
  name: 'roles-export-${uniqueString(account)}'
  scope: resourceGroup(split(account, '/')[4])
  params: {
    accountName: last(split(account, '/'))
    roles: appActions.roles
    roleKey: environmentName
    principalId: core.outputs.identityPrincipalId
  }
  dependsOn: [appRoles]
}]

// A VHD source account id, as an export account id: the role that reads its blobs and lists its keys.
module vhdSourceRoles 'app/account-roles.bicep' = [for account in vhdSourceAccounts: {
  name: 'roles-vhdsource-${uniqueString(account)}'
  scope: resourceGroup(split(account, '/')[4])
  params: {
    accountName: last(split(account, '/'))
    scopeKind: 'vhdSourceAccounts'
    roles: appActions.roles
    roleKey: environmentName
    principalId: core.outputs.identityPrincipalId
  }
  dependsOn: [appRoles]
}]

resource subscriptionRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in appActions.roles: if (role.scope == 'subscription') {
  name: guid(subscription().id, environmentName, role.name, 'subscription')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(subscription().id, environmentName, role.name))
    principalId: core.outputs.identityPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [appRoles]
}]

// A resource-group system topic in each source group, subscribed to the deallocate action only.
module deallocationEvents 'app/events.bicep' = [for group in sourceGroups: if (eventSubscriptionEnabled) {
  name: 'events-${uniqueString(group)}'
  scope: resourceGroup(group)
  params: {
    tags: tags
    appResourceGroup: appGroupName
    functionAppName: core.outputs.functionAppName
    functionName: deallocationFunctionName
    route: deallocationRoute
  }
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = appGroup.name
output AZURE_FUNCTION_NAME string = core.outputs.functionAppName
output SERVICE_API_NAME string = core.outputs.functionAppName
output AZURE_CLIENT_ID string = core.outputs.identityClientId
output API_URL string = 'https://${core.outputs.defaultHostName}/api'
output CAPTURES_URL string = 'https://${core.outputs.defaultHostName}/api/captures'
output EVENT_SUBSCRIPTION_ENABLED bool = eventSubscriptionEnabled
